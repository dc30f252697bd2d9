import { Suspense } from "react";
import { JobsPage } from "@/components/jobs/jobs-page";

export const metadata = { title: "Jobs" };

export default function Page() {
  return (
    <Suspense>
      <JobsPage />
    </Suspense>
  );
}
