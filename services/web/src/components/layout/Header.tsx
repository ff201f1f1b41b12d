"use client";
import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useLogout, useSession } from "@/lib/session";
import { type ConnectionState, useConnectionState } from "@/lib/stream";

const STATE_LABEL: Record<ConnectionState, string> = {
  connecting: "Connecting",
  open: "Live",
  reconnecting: "Reconnecting",
};

const STATE_DOT: Record<ConnectionState, string> = {
  connecting: "bg-accent",
  open: "bg-buy",
  reconnecting: "bg-sell",
};

/** The market data connection's state, announced politely to screen readers. */
function ConnectionBadge() {
  const state = useConnectionState();
  return (
    <span role="status" aria-live="polite" className="flex items-center gap-1.5 text-xs text-muted" title="Market data connection">
      <span aria-hidden className={`inline-block h-2 w-2 rounded-full ${STATE_DOT[state]}`} />
      <span>
        <span className="sr-only">Market data: </span>
        {STATE_LABEL[state]}
      </span>
    </span>
  );
}

function NavLink({ href, children, active }: { href: string; children: React.ReactNode; active: boolean }) {
  return (
    <Link prefetch={false}
      href={href}
      aria-current={active ? "page" : undefined}
      className={`rounded px-2 py-1 hover:text-fg focus-visible:outline-2 focus-visible:outline-accent ${active ? "text-fg" : "text-muted"}`}
    >
      {children}
    </Link>
  );
}

/** The top bar: brand, navigation, connection state, sign in / sign out. Links do not
 * prefetch: on a first load their route fetches took browser connections (six per host)
 * from the trading screen's own requests and delayed the live order book. */
export function Header() {
  const path = usePathname() ?? "/";
  const router = useRouter();
  const session = useSession();
  const logout = useLogout();
  return (
    <header className="border-b border-line bg-panel">
      <div className="mx-auto flex max-w-[1600px] flex-wrap items-center gap-x-4 gap-y-2 px-3 py-2">
        <Link prefetch={false} href="/" className="font-semibold text-accent">
          cex
        </Link>
        <nav aria-label="Main" className="flex items-center gap-1 text-sm">
          <NavLink href="/" active={path === "/"}>
            Markets
          </NavLink>
          <NavLink href="/trade" active={path.startsWith("/trade")}>
            Trade
          </NavLink>
          <NavLink href="/account" active={path.startsWith("/account")}>
            Account
          </NavLink>
        </nav>
        <div className="ml-auto flex items-center gap-3 text-sm">
          <ConnectionBadge />
          {session.data ? (
            <>
              <span className="hidden text-muted sm:inline" title="Signed in as">
                {session.data.email}
              </span>
              <button
                type="button"
                onClick={() => logout.mutate(undefined, { onSettled: () => router.push("/") })}
                className="rounded border border-line px-2 py-1 hover:bg-panel-2 focus-visible:outline-2 focus-visible:outline-accent"
              >
                Sign out
              </button>
            </>
          ) : (
            <Link prefetch={false}
              href={`/login?next=${encodeURIComponent(path)}`}
              className="rounded bg-accent px-2 py-1 font-medium text-black hover:brightness-110 focus-visible:outline-2 focus-visible:outline-fg"
            >
              Sign in
            </Link>
          )}
        </div>
      </div>
    </header>
  );
}
