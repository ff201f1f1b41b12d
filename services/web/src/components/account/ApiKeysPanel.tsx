"use client";
import { type FormEvent, useState } from "react";
import { type ApiKey, type ApiKeyCreated, useApiKeys, useCreateApiKey, useDeleteApiKey } from "@/lib/account";
import { checkKeyDraft, type KeyDraft, type Permission, PERMISSIONS } from "@/lib/accountForms";
import { errorMessage } from "@/lib/api";
import { Dialog } from "./Dialog";
import { Field, Message, Panel, dangerButton, inputClass, primaryButton, secondaryButton } from "./ui";

const PERMISSION_LABEL: Record<Permission, string> = { read: "Read", trade: "Trade", withdraw: "Withdraw" };

function when(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

/** The new key, and its HMAC secret shown this once, with a copy button. */
function CreatedDialog({ created, onClose }: { created: ApiKeyCreated; onClose: () => void }) {
  const [copied, setCopied] = useState<string | null>(null);
  const secret = created.secret;
  async function copy() {
    try {
      await navigator.clipboard.writeText(secret ?? created.apiKey);
      setCopied(secret ? "Secret key copied to the clipboard." : "API key copied to the clipboard.");
    } catch {
      setCopied("The browser refused the clipboard: select the text and copy it by hand.");
    }
  }
  return (
    <Dialog title="API key created" onClose={onClose}>
      <div className="flex flex-col gap-3 text-sm">
        {secret ? (
          <p className="rounded border border-accent/50 bg-accent/10 p-2 text-fg">
            <strong>Copy the secret key now: you will not see it again.</strong> The exchange keeps only a sealed copy
            and never shows it. If you lose it, delete this key and create a new one.
          </p>
        ) : (
          <p className="text-muted">Sign requests with the private half of the Ed25519 key you registered.</p>
        )}
        <Field label="API key" value={created.apiKey} readOnly onFocus={(e) => e.currentTarget.select()} className={`${inputClass} font-mono text-xs`} />
        {secret && (
          <Field label="Secret key" value={secret} readOnly onFocus={(e) => e.currentTarget.select()} className={`${inputClass} font-mono text-xs`} />
        )}
        <p role="status" className="text-buy empty:hidden">
          {copied ?? ""}
        </p>
        <div className="flex flex-wrap justify-end gap-2">
          <button type="button" onClick={copy} className={primaryButton} title={secret ? "Copy the secret key" : "Copy the API key"}>
            Copy
          </button>
          <button type="button" onClick={onClose} className={secondaryButton}>
            {secret ? "I have saved it" : "Close"}
          </button>
        </div>
      </div>
    </Dialog>
  );
}

/** "Delete this key?" with the consequences spelled out. */
function ConfirmDelete({ apiKey, onClose }: { apiKey: ApiKey; onClose: () => void }) {
  const remove = useDeleteApiKey();
  return (
    <Dialog title="Delete API key?" onClose={onClose}>
      <p className="mb-3 text-sm">
        <span className="font-medium">{apiKey.label || "Unlabelled key"}</span>{" "}
        <span className="font-mono text-xs break-all text-muted">{apiKey.apiKey}</span>
      </p>
      <p className="mb-3 text-sm text-muted">Programs using this key stop working at once. This cannot be undone.</p>
      <Message error={remove.isError ? errorMessage(remove.error) : null} />
      <div className="mt-2 flex justify-end gap-2">
        <button type="button" onClick={onClose} className={secondaryButton} autoFocus>
          Cancel
        </button>
        <button
          type="button"
          onClick={() => remove.mutate(apiKey.id, { onSuccess: onClose })}
          disabled={remove.isPending}
          className={`${dangerButton} px-3 py-1.5`}
        >
          Delete
        </button>
      </div>
    </Dialog>
  );
}

const EMPTY_DRAFT: KeyDraft = { label: "", permissions: ["read", "trade"], type: "HMAC", publicKey: "" };

/** Create an API key (label, permissions, HMAC or Ed25519), then list and delete them. */
export function ApiKeysPanel() {
  const keys = useApiKeys(true);
  const create = useCreateApiKey();
  const [draft, setDraft] = useState<KeyDraft>(EMPTY_DRAFT);
  const [problem, setProblem] = useState<string | null>(null);
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const [deleting, setDeleting] = useState<ApiKey | null>(null);

  function toggle(permission: Permission, on: boolean) {
    setDraft((d) => ({
      ...d,
      permissions: on ? [...d.permissions, permission] : d.permissions.filter((p) => p !== permission),
    }));
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    const checked = checkKeyDraft(draft);
    if ("error" in checked) {
      setProblem(checked.error);
      return;
    }
    setProblem(null);
    create.mutate(checked.request, {
      onSuccess: (answer) => {
        setCreated(answer);
        setDraft(EMPTY_DRAFT);
      },
    });
  }

  const rows = keys.data ?? [];
  return (
    <Panel title="API keys">
      <form onSubmit={submit} noValidate className="flex flex-col gap-3">
        <div className="grid gap-3 md:grid-cols-[minmax(10rem,20rem)_auto_auto] md:items-start">
          <Field
            label="Label"
            value={draft.label}
            onChange={(e) => setDraft((d) => ({ ...d, label: e.target.value }))}
            maxLength={64}
            autoComplete="off"
            placeholder="e.g. trading bot"
          />
          <fieldset className="flex flex-col gap-1">
            <legend className="mb-1 text-sm text-muted">Permissions</legend>
            <div className="flex flex-wrap gap-3 pt-1">
              {PERMISSIONS.map((p) => (
                <label key={p} className="flex items-center gap-1.5 text-sm">
                  <input
                    type="checkbox"
                    checked={draft.permissions.includes(p)}
                    onChange={(e) => toggle(p, e.target.checked)}
                    className="h-4 w-4 accent-accent"
                  />
                  {PERMISSION_LABEL[p]}
                </label>
              ))}
            </div>
          </fieldset>
          <fieldset className="flex flex-col gap-1">
            <legend className="mb-1 text-sm text-muted">Signature type</legend>
            <div className="flex flex-wrap gap-3 pt-1">
              {(["HMAC", "ED25519"] as const).map((type) => (
                <label key={type} className="flex items-center gap-1.5 text-sm">
                  <input
                    type="radio"
                    name="key-type"
                    value={type}
                    checked={draft.type === type}
                    onChange={() => setDraft((d) => ({ ...d, type }))}
                    className="h-4 w-4 accent-accent"
                  />
                  {type === "HMAC" ? "HMAC-SHA256 (secret made for you)" : "Ed25519 (your public key)"}
                </label>
              ))}
            </div>
          </fieldset>
        </div>
        {draft.type === "ED25519" && (
          <div className="flex flex-col gap-1">
            <label htmlFor="api-key-public-key" className="text-sm text-muted">
              Public key (PEM)
            </label>
            <textarea
              id="api-key-public-key"
              value={draft.publicKey}
              onChange={(e) => setDraft((d) => ({ ...d, publicKey: e.target.value }))}
              rows={4}
              spellCheck={false}
              placeholder={"-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----"}
              className={`${inputClass} font-mono text-xs`}
            />
          </div>
        )}
        <div>
          <button type="submit" className={primaryButton} disabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create API key"}
          </button>
        </div>
        <Message error={problem ?? (create.isError ? errorMessage(create.error) : null)} />
      </form>

      <h3 className="mt-5 mb-1 text-sm font-semibold">Your keys</h3>
      {keys.isPending ? (
        <p role="status" className="text-sm text-muted">
          Loading API keys…
        </p>
      ) : keys.isError ? (
        <p role="alert" className="text-sm text-sell">
          {errorMessage(keys.error)}
        </p>
      ) : rows.length === 0 ? (
        <p className="text-sm text-muted">No API keys yet.</p>
      ) : (
        <div className="overflow-x-auto">
          <table className="w-full text-sm">
            <caption className="sr-only">Your API keys</caption>
            <thead className="text-left text-xs text-muted">
              <tr>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  Label
                </th>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  API key
                </th>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  Permissions
                </th>
                <th scope="col" className="py-1.5 pr-3 font-normal">
                  Created
                </th>
                <th scope="col" className="py-1.5 font-normal">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((key) => (
                <tr key={key.id} className="border-t border-line align-top">
                  <th scope="row" id={`api-key-${key.id}`} className="py-1.5 pr-3 text-left font-medium">
                    {key.label || <span className="text-muted">(no label)</span>}
                    <span className="block text-xs font-normal text-muted">{key.type === "HMAC" ? "HMAC" : "Ed25519"}</span>
                  </th>
                  <td className="max-w-[18rem] py-1.5 pr-3 font-mono text-xs break-all">{key.apiKey}</td>
                  <td className="py-1.5 pr-3">{key.permissions.map((p) => PERMISSION_LABEL[p] ?? p).join(", ")}</td>
                  <td className="py-1.5 pr-3 whitespace-nowrap text-muted">{when(key.createTime)}</td>
                  <td className="py-1.5 text-right">
                    <button type="button" onClick={() => setDeleting(key)} aria-describedby={`api-key-${key.id}`} className={dangerButton}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {created && <CreatedDialog created={created} onClose={() => setCreated(null)} />}
      {deleting && <ConfirmDelete apiKey={deleting} onClose={() => setDeleting(null)} />}
    </Panel>
  );
}
