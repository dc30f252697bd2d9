"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardBody, CardHeader } from "@/components/ui/card";
import { TextField } from "@/components/ui/field";
import { errorMessage, useTRPC } from "@/components/trpc";

/** Shown to someone who belongs to no organisation (e.g. removed from their only one). */
export function NoOrganisation() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const create = useMutation(trpc.orgs.create.mutationOptions({ onSuccess: () => queryClient.invalidateQueries() }));
  const [name, setName] = useState("");
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name });
  };
  return (
    <Card className="mx-auto max-w-md">
      <CardHeader title="You are not in an organisation" description="Open an invite link from a colleague, or start an organisation of your own." />
      <CardBody>
        <form onSubmit={onSubmit} className="space-y-4">
          {create.error && <Alert>{errorMessage(create.error)}</Alert>}
          <TextField label="Organisation name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={80} />
          <Button type="submit" disabled={create.isPending}>Create organisation</Button>
        </form>
      </CardBody>
    </Card>
  );
}
