"use client";
import Link from "next/link";
import { usePathname } from "next/navigation";

const PAGES = [
  { href: "/account", label: "Balances & wallet" },
  { href: "/account/api-keys", label: "API keys" },
];

/** The account section's tabs (links: each page has its own address). */
export function AccountNav() {
  const path = usePathname();
  return (
    <nav aria-label="Account" className="mb-3 flex gap-1 border-b border-line text-sm">
      {PAGES.map((page) => {
        const active = path === page.href;
        return (
          <Link
            key={page.href}
            href={page.href}
            aria-current={active ? "page" : undefined}
            className={`-mb-px border-b-2 px-3 py-2 focus-visible:outline-2 focus-visible:outline-accent ${
              active ? "border-accent text-fg" : "border-transparent text-muted hover:text-fg"
            }`}
          >
            {page.label}
          </Link>
        );
      })}
    </nav>
  );
}
