"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";

/** Where alerts are POSTed as JSON, besides this page; empty sends none. */
export function AlertWebhookCard() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const settings = useQuery(trpc.fleet.alertSettings.queryOptions());
  const save = useMutation(trpc.fleet.setAlertSettings.mutationOptions({ onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.fleet.alertSettings.queryKey() }) }));
  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const url = String(new FormData(e.currentTarget).get("webhookUrl") ?? "").trim();
    save.mutate({ webhookUrl: url || null });
  };
  return (
    <Card className="mt-6">
      <CardHeader title="Alert webhook" description="Alerts (a device offline, a rollout failed) are also POSTed here as JSON. A failing webhook never holds anything up." />
      <CardBody>
        {settings.data && (
          <form onSubmit={onSubmit} className="flex flex-wrap items-end gap-3" key={settings.data.webhookUrl ?? ""}>
            <TextField label="Webhook URL" name="webhookUrl" type="url" defaultValue={settings.data.webhookUrl ?? ""} placeholder="https://hooks.example/gantry" className="min-w-80 flex-1" />
            <Button type="submit" variant="secondary" disabled={save.isPending}>Save</Button>
          </form>
        )}
        {save.isSuccess && <Alert tone="green" className="mt-3">Saved.</Alert>}
        {(settings.error || save.error) && <Alert className="mt-3">{errorMessage(settings.error ?? save.error)}</Alert>}
      </CardBody>
    </Card>
  );
}
