"use client";
import { type FormEvent, useId, useState } from "react";
import { type Transfer, useFaucet } from "@/lib/account";
import { checkAmount, checkAsset, showAmount } from "@/lib/accountForms";
import { ApiError, errorMessage } from "@/lib/api";
import { AssetOptions, useAssetPrecisions } from "./AssetOptions";
import { Field, Message, Panel, primaryButton } from "./ui";

/** The API's code for "the faucet is disabled on this exchange". */
const FAUCET_DISABLED = -9035;

/** Test deposits through the dev faucet; explains itself away where the faucet is off. */
export function DepositForm() {
  const faucet = useFaucet();
  const assets = useAssetPrecisions();
  const listId = useId();
  const [asset, setAsset] = useState("USDT");
  const [amount, setAmount] = useState("");
  const [problems, setProblems] = useState<{ asset?: string; amount?: string }>({});
  const [done, setDone] = useState<Transfer | null>(null);
  const disabled = faucet.error instanceof ApiError && faucet.error.code === FAUCET_DISABLED;

  function submit(event: FormEvent) {
    event.preventDefault();
    setDone(null);
    const a = checkAsset(asset, assets);
    const n = checkAmount(amount, "asset" in a ? assets.get(a.asset) : undefined);
    setProblems({ asset: "error" in a ? a.error : undefined, amount: "error" in n ? n.error : undefined });
    if ("error" in a || "error" in n) return;
    faucet.mutate(
      { asset: a.asset, amount: n.amount },
      {
        onSuccess: (transfer) => {
          setDone(transfer);
          setAmount("");
        },
      },
    );
  }

  if (disabled) {
    return (
      <Panel title="Deposit">
        <p className="text-sm text-muted">
          The test faucet is disabled on this exchange: deposits are credited by the exchange operator once your
          transfer arrives.
        </p>
      </Panel>
    );
  }
  return (
    <Panel title="Deposit">
      <p className="mb-3 text-sm text-muted">Free test funds from the development faucet.</p>
      <form onSubmit={submit} noValidate className="grid gap-3 sm:grid-cols-[8rem_1fr_auto] sm:items-start">
        <Field
          label="Asset"
          value={asset}
          onChange={(e) => setAsset(e.target.value)}
          list={listId}
          autoComplete="off"
          autoCapitalize="characters"
          spellCheck={false}
          error={problems.asset}
        />
        <AssetOptions id={listId} assets={assets} />
        <Field
          label="Amount"
          value={amount}
          onChange={(e) => setAmount(e.target.value)}
          inputMode="decimal"
          autoComplete="off"
          placeholder="1000"
          error={problems.amount}
        />
        <button type="submit" className={`${primaryButton} sm:mt-6`} disabled={faucet.isPending}>
          {faucet.isPending ? "Depositing…" : "Deposit"}
        </button>
      </form>
      <div className="mt-2">
        <Message
          error={faucet.isError ? errorMessage(faucet.error) : null}
          success={done && `Deposited ${showAmount(done.amount, assets.get(done.asset))} ${done.asset}.`}
        />
      </div>
    </Panel>
  );
}
