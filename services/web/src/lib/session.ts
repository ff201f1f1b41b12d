"use client";
/**
 * The signed-in user, from `GET /cex/v1/auth/session` (null when signed out), and sign-out.
 * Sign-in itself (`/cex/v1/auth/otp` then `/verify`) sets the cookies; afterwards call
 * `onSignedIn(queryClient)` so every page sees the new session.
 */
import { type QueryClient, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, apiGet, apiPostJson } from "./api";
import { queryKeys } from "./queryKeys";

/** The session the API knows the browser by. */
export interface Session {
  userId: number;
  email: string;
  /** Expiry, epoch milliseconds. */
  expiresAt: number;
}

/** Fetches the current session; null when not signed in (401). */
export async function fetchSession(): Promise<Session | null> {
  try {
    return await apiGet<Session>("/cex/v1/auth/session");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

/** The current session (data is null when signed out, undefined while loading). */
export function useSession() {
  return useQuery({
    queryKey: queryKeys.session,
    queryFn: fetchSession,
    staleTime: 60_000,
    retry: false,
  });
}

/** Refreshes everything that depends on who is signed in (call after a successful verify). */
export async function onSignedIn(client: QueryClient): Promise<void> {
  client.removeQueries({ queryKey: queryKeys.user.all });
  await client.invalidateQueries({ queryKey: queryKeys.session });
}

/** Signs out: revokes the session, clears the cookies and drops the user's cached data. */
export function useLogout() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => apiPostJson<object>("/cex/v1/auth/logout"),
    onSettled: () => {
      client.setQueryData(queryKeys.session, null);
      client.removeQueries({ queryKey: queryKeys.user.all });
    },
  });
}
