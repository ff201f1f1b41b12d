import type { Metadata } from "next";
import { BalancesTable } from "@/components/account/BalancesTable";
import { DepositForm } from "@/components/account/DepositForm";
import { WithdrawalsPanel } from "@/components/account/WithdrawalsPanel";

export const metadata: Metadata = { title: "Account" };

/** Balances (live), test deposits and withdrawal requests. */
export default function AccountPage() {
  return (
    <div className="flex flex-col gap-3">
      <BalancesTable />
      <DepositForm />
      <WithdrawalsPanel />
    </div>
  );
}
