"use client";
import { type FormEvent, useId, useState } from "react";
import { useRequestWithdrawal, useWithdrawals, type Withdrawal } from "@/lib/account";
import { checkAddress, checkAmount, checkAsset, showAmount } from "@/lib/accountForms";
import { errorMessage } from "@/lib/api";
import { AssetOptions, useAssetPrecisions } from "./AssetOptions";
import { Field, Message, Panel, primaryButton } from "./ui";

/** A fresh idempotency key (works on plain http too, unlike `crypto.randomUUID`). */
function newClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const STATUS_CLASS: Record<Withdrawal["status"], string> = {
  PENDING: "text-accent",
  COMPLETED: "text-buy",
  REJECTED: "text-sell",
};

const STATUS_LABEL: Record<Withdrawal["status"], string> = {
  PENDING: "Pending",
  COMPLETED: "Completed",
  REJECTED: "Rejected",
};

function when(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** Withdrawal requests: the form (the amount is locked until an operator decides) and the list. */
export function WithdrawalsPanel() {
  const list = useWithdrawals(true);
  const request = useRequestWithdrawal();
  const assets = useAssetPrecisions();
  const listId = useId();
  const [asset, setAsset] = useState("");
  const [amount, setAmount] = useState("");
  const [address, setAddress] = useState("");
  // One key per distinct request: a repeated click or a retry after a lost answer is the
  // same request to the server; any edit makes a new one.
  const [clientId, setClientId] = useState(newClientId);
  const [problems, setProblems] = useState<{ asset?: string; amount?: string; address?: string }>({});
  const [done, setDone] = useState<Withdrawal | null>(null);

  function edit(setter: (value: string) => void) {
    return (event: { target: { value: string } }) => {
      setter(event.target.value);
      setClientId(newClientId());
    };
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    setDone(null);
    const a = checkAsset(asset, assets);
    const n = checkAmount(amount, "asset" in a ? assets.get(a.asset) : undefined);
    const d = checkAddress(address);
    setProblems({
      asset: "error" in a ? a.error : undefined,
      amount: "error" in n ? n.error : undefined,
      address: "error" in d ? d.error : undefined,
    });
    if ("error" in a || "error" in n || "error" in d) return;
    request.mutate(
      { asset: a.asset, amount: n.amount, address: d.address, clientId },
      {
        onSuccess: (w) => {
          setDone(w);
          setAmount("");
          setAddress("");
          setClientId(newClientId());
        },
      },
    );
  }

  const rows = list.data ?? [];
  return (
    <Panel title="Withdrawals">
      <form onSubmit={submit} noValidate className="grid gap-3 md:grid-cols-[8rem_10rem_1fr_auto] md:items-start">
        <Field
          label="Asset"
          value={asset}
          onChange={edit(setAsset)}
          list={listId}
          autoComplete="off"
          autoCapitalize="characters"
          spellCheck={false}
          placeholder="BTC"
          error={problems.asset}
        />
        <AssetOptions id={listId} assets={assets} />
        <Field
          label="Amount"
          value={amount}
          onChange={edit(setAmount)}
          inputMode="decimal"
          autoComplete="off"
          placeholder="0.5"
          error={problems.amount}
        />
        <Field
          label="Address"
          value={address}
          onChange={edit(setAddress)}
          autoComplete="off"
          spellCheck={false}
          placeholder="Destination address"
          error={problems.address}
        />
        <button type="submit" className={`${primaryButton} md:mt-6`} disabled={request.isPending}>
          {request.isPending ? "Requesting…" : "Request withdrawal"}
        </button>
      </form>
      <div className="mt-2">
        <Message
          error={request.isError ? errorMessage(request.error) : null}
          success={
            done &&
            `Withdrawal of ${showAmount(done.amount, assets.get(done.asset))} ${done.asset} requested: the amount is locked until it is processed.`
          }
        />
      </div>
      <h3 className="mt-4 mb-1 text-sm font-semibold">Your requests</h3>
      {list.isPending ? (
        <p role="status" className="text-sm text-muted">
          Loading withdrawals…
        </p>
      ) : list.isError ? (
        <p role="alert" className="text-sm text-sell">
          {errorMessage(list.error)}
        </p>
      ) : rows.length === 0 ? (
        <p className="text-sm text-muted">No withdrawal requests yet.</p>
      ) : (
        <div className="overflow-x-auto">
          <table className="tabular w-full text-sm">
            <caption className="sr-only">Your withdrawal requests, newest first</caption>
            <thead className="text-left text-xs text-muted">
              <tr>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  Requested
                </th>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  Asset
                </th>
                <th scope="col" className="py-1.5 pr-3 text-right font-normal">
                  Amount
                </th>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  Address
                </th>
                <th scope="col" className="py-1.5 font-normal">
                  Status
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((w) => {
                return (
                  <tr key={w.id} className="border-t border-line align-top">
                    <td className="py-1.5 pr-3 whitespace-nowrap text-muted">{when(w.createTime)}</td>
                    <td className="py-1.5 pr-3">{w.asset}</td>
                    <td className="py-1.5 pr-3 text-right">
                      {showAmount(w.amount, assets.get(w.asset))}
                    </td>
                    <td className="max-w-[16rem] py-1.5 pr-3 break-all">{w.address}</td>
                    <td className="py-1.5">
                      <span className={STATUS_CLASS[w.status]}>{STATUS_LABEL[w.status]}</span>
                      {w.reason && <span className="block text-xs text-muted">{w.reason}</span>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}
