import { hash, verify } from "@node-rs/argon2";
import { ZxcvbnFactory } from "@zxcvbn-ts/core";
import * as common from "@zxcvbn-ts/language-common";
import * as english from "@zxcvbn-ts/language-en";
import { AppError } from "../errors";

// argon2id with OWASP's suggested minimums (19 MiB, 2 passes).
const options = { algorithm: 2 /* Argon2id */, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

export function hashPassword(password: string): Promise<string> {
  return hash(password, options);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

/** Spends the same time as a real check, so unknown emails cannot be told apart by timing. */
let dummyHash: Promise<string> | undefined;
export async function burnPasswordCheck(password: string): Promise<void> {
  dummyHash ??= hashPassword("gantry-timing-equaliser");
  await verifyPassword(await dummyHash, password);
}

// zxcvbn estimates how many guesses a password takes, knowing the common and leaked passwords,
// English words and names, keyboard walks, repeats, dates and l33t spellings. Score 3 (about
// 10^8 guesses) is its "safely unguessable" for a slowly hashed password such as ours.
const MIN_SCORE = 3;
let estimator: ZxcvbnFactory | undefined;

/**
 * Refuses a password that is easy to guess (common, leaked, a word with digits, a repeat, or
 * made of the person's own name or email), saying why and how to pick a better one.
 */
export function checkPasswordStrength(password: string, { userInputs }: { userInputs: string[] }): void {
  estimator ??= new ZxcvbnFactory({
    dictionary: { ...common.dictionary, ...english.dictionary },
    graphs: common.adjacencyGraphs,
    translations: { ...english.translations, warnings: { ...english.translations.warnings, userInputs: "It is made from your name or email address." } },
  });
  // The person's name and email whole, run together, and word by word: "Ada Lovelace" gives
  // "adalovelace", "ada" and "lovelace".
  const words = userInputs
    .flatMap((input) => [input, input.toLowerCase().replace(/[^a-z0-9]/g, ""), ...input.toLowerCase().split(/[^a-z0-9]+/)])
    .filter((w) => w.length >= 3);
  const result = estimator.check(password, [...words, "gantry"]);
  if (result.score >= MIN_SCORE) return;
  const why = result.feedback.warning ?? "It would be found in few guesses.";
  const how = result.feedback.suggestions.length ? result.feedback.suggestions.join(" ") : "A few uncommon words together make a strong password that is easy to remember.";
  throw new AppError("BAD_REQUEST", `Choose a password that is harder to guess. ${why} ${how}`);
}
