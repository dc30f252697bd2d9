"use client";

import Link from "next/link";
import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { CopyButton } from "@/components/ui/copy-button";
import { useTRPC } from "@/components/trpc";

/**
 * The edge agent: the built file to download, and the login line that signs it in to this
 * portal with a token — the one just made here, when it may upload.
 */
export function EdgeAgentCard({ newToken }: { newToken?: { token: string; canUpload: boolean } }) {
  const trpc = useTRPC();
  const me = useQuery(trpc.auth.me.queryOptions());
  const [portal, setPortal] = useState("");
  // The address this page was reached at is the one the robot's computer can reach too, as a rule.
  useEffect(() => setPortal(window.location.origin), []);
  const token = newToken?.canUpload ? newToken.token : "<token>";
  const loginLine = `node gantry-agent.cjs login --portal ${portal || "<portal address>"} --token ${token}`;

  return (
    <Card id="edge-agent" className="scroll-mt-6">
      <CardHeader
        title="Edge agent"
        description="Runs on the robot's computer (Node.js 20 or newer, arm64 or x64) and uploads recorded episodes here; Gantry encodes them."
        actions={
          <a href="/api/agent/download" download className="inline-flex h-10 items-center rounded-md bg-brand-600 px-4 text-sm font-medium text-white hover:bg-brand-700">
            Download gantry-agent.cjs
          </a>
        }
      />
      <CardBody className="space-y-3 text-sm">
        <p>Copy the file to the robot&apos;s computer, then sign it in{me.data?.currentOrg ? <> as {me.data.user.name} in {me.data.currentOrg.name}</> : null}:</p>
        <div className="flex flex-wrap items-center gap-2">
          <code aria-label="Agent login command" className="min-w-0 flex-1 break-all rounded-md bg-zinc-100 px-3 py-2 font-mono text-xs dark:bg-zinc-950">{loginLine}</code>
          <CopyButton text={loginLine} label="Copy the login line" selectTarget={() => document.querySelector('[aria-label="Agent login command"]')} />
        </div>
        <p className="text-zinc-500">
          {newToken?.canUpload
            ? "This line holds the token you just made: run it once, and the agent keeps the token in ~/.gantry/agent.json."
            : newToken
              ? "The token you just made cannot upload: make one with the write scope for the agent."
              : "Make a token with the write scope above and its login line appears here, ready to copy."}{" "}
          Then <code className="font-mono text-xs">node gantry-agent.cjs watch ~/recordings/pick --dataset lab/pick-cube</code> uploads each episode as it finishes (see <Link href="/docs/edge" className="underline">the edge guide</Link>).
        </p>
      </CardBody>
    </Card>
  );
}
