import type { TestProject } from "vitest/node";
import { createSharedSwiftHome, stopSharedSwift } from "../helpers/s3-swift";
import { createTestDatabase } from "./test-database";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    /** Where the run's one Swift (started by the first test file that needs it) records itself. */
    swiftHome: string;
  }
}

export default async function setup(project: TestProject) {
  const database = await createTestDatabase("unit");
  project.provide("databaseUrl", database.url);
  const swiftHome = createSharedSwiftHome();
  project.provide("swiftHome", swiftHome);
  return async () => {
    await stopSharedSwift(swiftHome);
    await database.drop();
  };
}
