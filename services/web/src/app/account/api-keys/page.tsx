import type { Metadata } from "next";
import { ApiKeysPanel } from "@/components/account/ApiKeysPanel";

export const metadata: Metadata = { title: "API keys" };

/** Create, list and delete API keys. */
export default function ApiKeysPage() {
  return <ApiKeysPanel />;
}
