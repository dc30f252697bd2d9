import { expect, test } from "@playwright/test";
import { expectJobSucceeded, signUp, unique } from "./helpers";

// Someone in two organisations works in both at once, one per tab: each tab acts in its own,
// whichever was chosen last elsewhere.

test("two tabs on two organisations each act in their own", async ({ browser }) => {
  const ann = { name: `Ann ${unique()}`, email: `ann-${unique()}@example.test`, password: "a long enough password" };
  const bob = { name: `Bob ${unique()}`, email: `bob-${unique()}@example.test`, password: "another long password" };
  const annLab = `${ann.name}'s lab`;
  const bobLab = `${bob.name}'s lab`;

  const annContext = await browser.newContext();
  const bobContext = await browser.newContext();
  const first = await annContext.newPage();
  const bobPage = await bobContext.newPage();

  await test.step("Ann joins Bob's organisation as an operator", async () => {
    await signUp(first, ann);
    await expect(first.getByRole("heading", { level: 1 })).toHaveText(annLab);
    await signUp(bobPage, bob);
    await bobPage.goto("/settings/members");
    await bobPage.getByLabel("Role", { exact: true }).selectOption("operator");
    await bobPage.getByRole("button", { name: "Create invite link" }).click();
    await expect(bobPage.getByText("Invite link (operator)")).toBeVisible();
    // The line names the role the link was made for, not the one selected afterwards.
    await bobPage.getByLabel("Role", { exact: true }).selectOption("viewer");
    await expect(bobPage.getByText("Invite link (operator)")).toBeVisible();
    const inviteUrl = await bobPage.getByLabel("Invite link").inputValue();
    await first.goto(inviteUrl);
    await first.getByRole("button", { name: `Join ${bobLab}` }).click();
    await expect(first.getByRole("heading", { level: 1 })).toHaveText(bobLab);
  });

  const second = await annContext.newPage();
  await test.step("a second tab switches to Ann's own organisation; the first stays in Bob's", async () => {
    await second.goto("/");
    await expect(second.getByRole("heading", { level: 1 })).toHaveText(bobLab);
    await second.getByRole("combobox", { name: "Organisation" }).selectOption({ label: `${annLab} (owner)` });
    await expect(second.getByRole("heading", { level: 1 })).toHaveText(annLab);
    await first.reload();
    await expect(first.getByRole("heading", { level: 1 })).toHaveText(bobLab);
    await expect(first.getByRole("combobox", { name: "Organisation" }).locator("option:checked")).toHaveText(`${bobLab} (operator)`);
  });

  await test.step("a job started in each tab lands in that tab's organisation", async () => {
    await first.getByRole("button", { name: "Run self-test" }).click();
    await expect(first).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
    await expectJobSucceeded(first);
    await second.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Jobs", exact: true }).click();
    await expect(second.getByText("No jobs yet.")).toBeVisible();
    await bobPage.goto("/jobs");
    await expect(bobPage.locator("[data-job-id]")).toHaveCount(1);
  });

  await annContext.close();
  await bobContext.close();
});
