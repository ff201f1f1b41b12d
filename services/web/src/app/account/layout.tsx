import type { ReactNode } from "react";
import { AccountNav } from "@/components/account/AccountNav";
import { RequireSession } from "@/components/account/RequireSession";

/** The account pages: signed-in users only (others go to /login?next=…), with their tabs. */
export default function AccountLayout({ children }: { children: ReactNode }) {
  return (
    <div className="mx-auto max-w-5xl">
      <h1 className="mb-2 text-lg font-semibold">Account</h1>
      <AccountNav />
      <RequireSession>{children}</RequireSession>
    </div>
  );
}
