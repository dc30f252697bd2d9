"use client";

import { SessionProvider } from "next-auth/react";
import type { ReactNode } from "react";
import { ApiProvider } from "./trpc";

export function Providers({ children }: { children: ReactNode }) {
  return (
    <SessionProvider refetchOnWindowFocus={false}>
      <ApiProvider>{children}</ApiProvider>
    </SessionProvider>
  );
}
