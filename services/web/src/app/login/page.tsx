import type { Metadata } from "next";
import { Suspense } from "react";
import { LoginForm } from "@/components/account/LoginForm";

export const metadata: Metadata = { title: "Sign in" };

/** Email one-time-password sign-in; `?next=` is where to go afterwards. */
export default function LoginPage() {
  // useSearchParams needs a Suspense boundary for the page to be prerendered.
  return (
    <Suspense fallback={<p className="text-muted">Loading…</p>}>
      <LoginForm />
    </Suspense>
  );
}
