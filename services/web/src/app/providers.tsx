"use client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { type ReactNode, useState } from "react";
import { ApiError } from "@/lib/api";
import { useSession } from "@/lib/session";
import { useUserStream } from "@/lib/userStream";

/** Opens the user data stream whenever someone is signed in. */
function UserStream() {
  const session = useSession();
  useUserStream(Boolean(session.data));
  return null;
}

/** The app's client-side context: one QueryClient for the page's lifetime. */
export function Providers({ children }: { children: ReactNode }) {
  const [client] = useState(
    () =>
      new QueryClient({
        defaultOptions: {
          queries: {
            staleTime: 10_000,
            refetchOnWindowFocus: false,
            // A refusal (4xx) will not change by asking again.
            retry: (count, error) => !(error instanceof ApiError && error.status >= 400 && error.status < 500) && count < 2,
          },
        },
      }),
  );
  return (
    <QueryClientProvider client={client}>
      <UserStream />
      {children}
    </QueryClientProvider>
  );
}
