"use client";
import { usePathname, useRouter } from "next/navigation";
import { type ReactNode, useEffect } from "react";
import { errorMessage } from "@/lib/api";
import { useSession } from "@/lib/session";

/** Renders `children` only when signed in; a signed-out visitor goes to `/login?next=…`. */
export function RequireSession({ children }: { children: ReactNode }) {
  const session = useSession();
  const router = useRouter();
  const path = usePathname() ?? "/account";
  const signedOut = session.data === null;
  useEffect(() => {
    if (signedOut) router.replace(`/login?next=${encodeURIComponent(path)}`);
  }, [signedOut, path, router]);
  if (session.isError) {
    return (
      <p role="alert" className="text-sell">
        Cannot tell whether you are signed in: {errorMessage(session.error)}
      </p>
    );
  }
  if (!session.data) {
    return (
      <p role="status" className="text-muted">
        {signedOut ? "Signed out: taking you to the sign-in page…" : "Loading your account…"}
      </p>
    );
  }
  return <>{children}</>;
}
