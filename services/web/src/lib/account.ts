"use client";
/**
 * The account endpoints (`/cex/v1/...`, session cookie + CSRF through `api.ts`) as
 * TanStack queries and mutations: email sign-in, the dev faucet, withdrawal requests and
 * API keys. Balances come from W1's `useAccount` (`GET /api/v3/account`), which the user
 * data stream keeps live. Everything here lives under `queryKeys.user`, dropped on sign-out.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { KeyRequest, Permission } from "./accountForms";
import { apiDelete, apiGet, apiPostJson } from "./api";
import { queryKeys } from "./queryKeys";
import { onSignedIn, type Session } from "./session";

/** Query keys of the account pages (under the user's prefix). */
export const accountKeys = {
  /** Withdrawal requests; under `wallet`, which a `balanceUpdate` event invalidates. */
  withdrawals: [...queryKeys.user.wallet, "withdrawals"] as const,
  apiKeys: queryKeys.user.apiKeys,
};

// ------------------------------------------------------------------------- sign-in

/** `POST /cex/v1/auth/otp`. */
export interface CodeSent {
  sent: boolean;
  expiresInS: number;
}

/** Asks for a login code by email. */
export function requestCode(email: string): Promise<CodeSent> {
  return apiPostJson<CodeSent>("/cex/v1/auth/otp", { email });
}

/** Signs in with the code (sets the session cookies), then refreshes who is signed in. */
export function useVerifyCode() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { email: string; code: string }) => apiPostJson<Session>("/cex/v1/auth/verify", body),
    onSuccess: () => onSignedIn(client),
  });
}

// ------------------------------------------------------------------------- wallet

/** A deposit credited by the faucet. */
export interface Transfer {
  id: number;
  externalId: string;
  asset: string;
  amount: string;
}

/** A withdrawal request. */
export interface Withdrawal {
  id: number;
  asset: string;
  amount: string;
  address: string;
  clientId: string | null;
  status: "PENDING" | "COMPLETED" | "REJECTED";
  reason: string | null;
  createTime: number;
  updateTime: number;
}

/** Free test funds (dev exchanges; the API answers -9035 when the faucet is off). */
export function useFaucet() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { asset: string; amount: string }) => apiPostJson<Transfer>("/cex/v1/faucet", body),
    onSuccess: () => client.invalidateQueries({ queryKey: queryKeys.user.account }),
  });
}

/** The user's withdrawal requests, newest first. */
export function useWithdrawals(enabled: boolean) {
  return useQuery({
    queryKey: accountKeys.withdrawals,
    queryFn: () => apiGet<Withdrawal[]>("/cex/v1/withdrawals"),
    enabled,
    // An operator's decision arrives as a balanceUpdate; a slow poll covers a missed one.
    refetchInterval: 30_000,
  });
}

/**
 * Requests a withdrawal. `clientId` makes a retry of the same request (double click,
 * lost answer) a no-op on the server instead of a second withdrawal.
 */
export function useRequestWithdrawal() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { asset: string; amount: string; address: string; clientId: string }) =>
      apiPostJson<Withdrawal>("/cex/v1/withdrawals", body),
    onSuccess: async () => {
      await Promise.all([
        client.invalidateQueries({ queryKey: accountKeys.withdrawals }),
        client.invalidateQueries({ queryKey: queryKeys.user.account }),
      ]);
    },
  });
}

// ------------------------------------------------------------------------- API keys

/** An API key as listed (never its secret). */
export interface ApiKey {
  id: number;
  apiKey: string;
  type: "HMAC" | "ED25519";
  label: string;
  permissions: Permission[];
  createTime: number;
}

/** The answer to a creation: the HMAC secret, shown this once. */
export interface ApiKeyCreated {
  id: number;
  apiKey: string;
  type: "HMAC" | "ED25519";
  label: string;
  permissions: Permission[];
  secret: string | null;
}

/** The user's API keys. */
export function useApiKeys(enabled: boolean) {
  return useQuery({
    queryKey: accountKeys.apiKeys,
    queryFn: () => apiGet<ApiKey[]>("/cex/v1/api-keys"),
    enabled,
  });
}

/** Creates an API key. */
export function useCreateApiKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (request: KeyRequest) => apiPostJson<ApiKeyCreated>("/cex/v1/api-keys", request),
    onSuccess: () => client.invalidateQueries({ queryKey: accountKeys.apiKeys }),
  });
}

/** Deletes (revokes) an API key. */
export function useDeleteApiKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: number) => apiDelete<{ id: number; deleted: boolean }>(`/cex/v1/api-keys/${id}`),
    onSuccess: () => client.invalidateQueries({ queryKey: accountKeys.apiKeys }),
  });
}
