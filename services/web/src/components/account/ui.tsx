/**
 * The account pages' small building blocks, so every form looks and behaves alike: a
 * labelled field with its hint and error wired to `aria-describedby`, buttons with a
 * visible focus ring, a titled panel that is a landmark region, and a message line.
 */
import { type ComponentPropsWithRef, type ReactNode, useId } from "react";

const FOCUS = "focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-accent";

export const inputClass = `w-full rounded border border-line bg-panel-2 px-2 py-1.5 text-fg placeholder:text-muted/70 ${FOCUS} aria-[invalid=true]:border-sell`;

export const primaryButton = `rounded bg-accent px-3 py-1.5 font-medium text-black hover:brightness-110 disabled:cursor-not-allowed disabled:opacity-60 ${FOCUS}`;

export const secondaryButton = `rounded border border-line px-3 py-1.5 text-fg hover:bg-panel-2 disabled:cursor-not-allowed disabled:opacity-60 ${FOCUS}`;

export const dangerButton = `rounded border border-sell/60 px-2 py-1 text-sell hover:bg-sell/10 disabled:cursor-not-allowed disabled:opacity-60 ${FOCUS}`;

/** A text input with its label, optional hint and error (announced with the field). */
export function Field({
  label,
  hint,
  error,
  ...input
}: { label: string; hint?: ReactNode; error?: string | null } & ComponentPropsWithRef<"input">) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  return (
    <div className="flex min-w-0 flex-col gap-1">
      <label htmlFor={id} className="text-sm text-muted">
        {label}
      </label>
      <input
        id={id}
        className={inputClass}
        aria-invalid={error ? true : undefined}
        aria-describedby={[hintId, errorId].filter(Boolean).join(" ") || undefined}
        {...input}
      />
      {hint && (
        <p id={hintId} className="text-xs text-muted">
          {hint}
        </p>
      )}
      {error && (
        <p id={errorId} className="text-xs text-sell">
          {error}
        </p>
      )}
    </div>
  );
}

/** A panel that is also a named landmark (`region`), titled by its heading. */
export function Panel({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  const id = useId();
  return (
    <section aria-labelledby={id} className="rounded border border-line bg-panel p-3 sm:p-4">
      <div className="mb-3 flex flex-wrap items-center justify-between gap-2">
        <h2 id={id} className="text-base font-semibold">
          {title}
        </h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** The outcome of the last action: an error is an alert, a success a polite status. */
export function Message({ error, success }: { error?: string | null; success?: string | null }) {
  return (
    <>
      <p role="alert" className="min-h-0 text-sm text-sell empty:hidden">
        {error ?? ""}
      </p>
      <p role="status" className="min-h-0 text-sm text-buy empty:hidden">
        {error ? "" : (success ?? "")}
      </p>
    </>
  );
}
