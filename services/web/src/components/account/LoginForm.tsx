"use client";
import { useRouter, useSearchParams } from "next/navigation";
import { type FormEvent, useEffect, useRef, useState } from "react";
import { requestCode, useVerifyCode } from "@/lib/account";
import { safeNext } from "@/lib/accountForms";
import { errorMessage } from "@/lib/api";
import { useSession } from "@/lib/session";
import { Field, Message, primaryButton, secondaryButton } from "./ui";

/**
 * Email one-time-password sign-in: the email gets a 6-digit code, the code signs in (a new
 * email makes a new account), then back to `?next=` (a path of this site only). The API's
 * own messages are shown: wrong code with the attempts left, expired, rate-limited.
 */
export function LoginForm() {
  const router = useRouter();
  const next = safeNext(useSearchParams().get("next"));
  const session = useSession();
  const verify = useVerifyCode();
  const [email, setEmail] = useState("");
  const [code, setCode] = useState("");
  const [sentTo, setSentTo] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const codeInput = useRef<HTMLInputElement>(null);

  // Signed in (just now, or already when arriving here): go where the user was going.
  const signedIn = Boolean(session.data);
  useEffect(() => {
    if (signedIn) router.replace(next);
  }, [signedIn, next, router]);

  useEffect(() => {
    if (sentTo) codeInput.current?.focus();
  }, [sentTo]);

  async function send(event?: FormEvent) {
    event?.preventDefault();
    const address = email.trim();
    if (!address) {
      setError("Enter your email address.");
      return;
    }
    setSending(true);
    setError(null);
    setNotice(null);
    try {
      const answer = await requestCode(address);
      setSentTo(address);
      setCode("");
      verify.reset();
      setNotice(`We sent a 6-digit code to ${address}. It is valid for ${Math.round(answer.expiresInS / 60)} minutes.`);
    } catch (failure) {
      setError(errorMessage(failure));
    } finally {
      setSending(false);
    }
  }

  function signIn(event: FormEvent) {
    event.preventDefault();
    if (!sentTo) return;
    const typed = code.replace(/\s+/g, "");
    if (!/^\d{6}$/.test(typed)) {
      setError("The code is the 6 digits from the email.");
      return;
    }
    setError(null);
    verify.mutate(
      { email: sentTo, code: typed },
      { onError: (failure) => setError(errorMessage(failure)), onSuccess: () => setNotice("Signed in.") },
    );
  }

  return (
    <div className="mx-auto mt-6 w-full max-w-sm rounded border border-line bg-panel p-4 sm:p-6">
      <h1 className="mb-1 text-lg font-semibold">Sign in</h1>
      <p className="mb-4 text-sm text-muted">With a code sent to your email. New here? The same steps open an account.</p>
      {!sentTo ? (
        <form onSubmit={send} noValidate className="flex flex-col gap-3">
          <Field
            label="Email"
            type="email"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            autoComplete="email"
            inputMode="email"
            required
            autoFocus
          />
          <button type="submit" className={primaryButton} disabled={sending}>
            {sending ? "Sending…" : "Send code"}
          </button>
        </form>
      ) : (
        <form onSubmit={signIn} noValidate className="flex flex-col gap-3">
          <p className="text-sm">
            Code sent to <span className="font-medium break-all">{sentTo}</span>
          </p>
          <Field
            ref={codeInput}
            label="Code"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            autoComplete="one-time-code"
            inputMode="numeric"
            pattern="[0-9]*"
            maxLength={8}
            required
            className="w-full rounded border border-line bg-panel-2 px-2 py-1.5 font-mono text-lg tracking-[0.3em] focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-accent"
          />
          <button type="submit" className={primaryButton} disabled={verify.isPending || verify.isSuccess}>
            {verify.isPending ? "Signing in…" : "Sign in"}
          </button>
          <div className="flex flex-wrap gap-2 text-sm">
            <button type="button" className={secondaryButton} onClick={() => void send()} disabled={sending}>
              Send a new code
            </button>
            <button
              type="button"
              className={secondaryButton}
              onClick={() => {
                setSentTo(null);
                setNotice(null);
                setError(null);
              }}
            >
              Use another email
            </button>
          </div>
        </form>
      )}
      <div className="mt-3">
        <Message error={error} success={notice} />
      </div>
    </div>
  );
}
