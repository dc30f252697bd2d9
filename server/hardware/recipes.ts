import { z } from "zod";

// Set-up recipes: declared, versioned lists of steps the agent runs on the arm's computer.
// The agent runs only the recipes compiled into it, by id and version, with parameters checked
// against each recipe's schema — the portal never sends a command line, so an account on the
// portal cannot run arbitrary programs on the robots' computers. Each step is one `bash -c`
// script; parameters reach it as environment variables, never spliced into the script.

export interface RecipeStep {
  id: string;
  title: string;
  /** A bash script; parameters are in the environment as GANTRY_<NAME>. */
  script: string;
  /** Needs root (or passwordless sudo): skipped with `manual` when the agent has neither. */
  needsRoot?: { manual: string };
  /** The step is ended (its whole process group) after this long. */
  timeoutMs: number;
}

export interface Recipe<P extends z.ZodType = z.ZodType> {
  id: string;
  version: number;
  title: string;
  description: string;
  params: P;
  steps: RecipeStep[];
}

const installPath = z
  .string()
  .max(255)
  .regex(/^(~|~\/|\/)[A-Za-z0-9._/-]*$/, "the folder is an absolute path or one under ~ (letters, digits, . _ - /)")
  .refine((p) => !p.split("/").includes(".."), "the folder cannot contain ..")
  .default("~/lerobot");

const MINUTE = 60_000;

export const RECIPES = {
  "install-lerobot": {
    id: "install-lerobot",
    version: 1,
    title: "Install LeRobot",
    description: "Python 3.10 or newer, a virtual environment in the folder, and lerobot with the motor bus's extra; then checks that LeRobot's tools are there.",
    params: z.object({ path: installPath, extra: z.enum(["feetech", "dynamixel"]).default("feetech") }).strict(),
    steps: [
      {
        id: "python",
        title: "Check Python",
        script: `python3 -c 'import sys; v = sys.version_info; print("Python", sys.version.split()[0]); sys.exit(0 if v >= (3, 10) else "LeRobot needs Python 3.10 or newer: install it (e.g. sudo apt install python3.12) and run this again")'
python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "Python cannot make virtual environments here: sudo apt install python3-venv" >&2; exit 1; }`,
        timeoutMs: MINUTE,
      },
      {
        id: "venv",
        title: "Make the virtual environment",
        script: `dir="\${GANTRY_PATH/#\\~/$HOME}"
mkdir -p "$dir"
if [ -x "$dir/.venv/bin/python" ]; then echo "$dir/.venv already exists"; else python3 -m venv "$dir/.venv" && echo "Made $dir/.venv"; fi`,
        timeoutMs: 5 * MINUTE,
      },
      {
        id: "install",
        title: "Install lerobot",
        script: `dir="\${GANTRY_PATH/#\\~/$HOME}"
"$dir/.venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off "lerobot[$GANTRY_EXTRA]"`,
        timeoutMs: 60 * MINUTE,
      },
      {
        id: "verify",
        title: "Check lerobot-find-port",
        script: `dir="\${GANTRY_PATH/#\\~/$HOME}"
"$dir/.venv/bin/python" -c 'from importlib.metadata import version; print("lerobot", version("lerobot"))'
test -x "$dir/.venv/bin/lerobot-find-port" || { echo "lerobot-find-port is missing from $dir/.venv/bin: the install did not finish" >&2; exit 1; }
echo "LeRobot is ready: source $dir/.venv/bin/activate"`,
        timeoutMs: MINUTE,
      },
    ],
  },
  dialout: {
    id: "dialout",
    version: 1,
    title: "Add me to dialout",
    description: "Serial ports belong to the dialout group: the user the agent runs as joins it (log out and back in afterwards).",
    params: z.object({}).strict(),
    steps: [
      {
        id: "dialout",
        title: "Join the dialout group",
        script: `user="$(id -un)"
if id -nG "$user" | tr ' ' '\\n' | grep -qx dialout; then echo "$user is already in dialout"; exit 0; fi
$GANTRY_SUDO usermod -aG dialout "$user" && echo "Added $user to dialout: log out and back in (or reboot) for it to take effect"`,
        needsRoot: { manual: "sudo usermod -aG dialout $USER, then log out and back in" },
        timeoutMs: MINUTE,
      },
    ],
  },
  "remove-brltty": {
    id: "remove-brltty",
    version: 1,
    title: "Remove brltty",
    description: "brltty (a braille display service) takes CH340/CH341 adapters, and the arm's port vanishes a second after it appears.",
    params: z.object({}).strict(),
    steps: [
      {
        id: "remove",
        title: "Remove brltty",
        script: `if ! dpkg -s brltty >/dev/null 2>&1; then echo "brltty is not installed"; exit 0; fi
DEBIAN_FRONTEND=noninteractive $GANTRY_SUDO apt-get remove -y brltty && echo "Removed brltty: plug the arm in again"`,
        needsRoot: { manual: "sudo apt remove brltty, then plug the arm in again" },
        timeoutMs: 10 * MINUTE,
      },
    ],
  },
} satisfies Record<string, Recipe>;

export type RecipeId = keyof typeof RECIPES;
export const recipeIds = Object.keys(RECIPES) as [RecipeId, ...RecipeId[]];

/** What the pages list: the recipes without their scripts. */
export function recipeSummaries() {
  return Object.values(RECIPES).map((r) => ({ id: r.id as RecipeId, version: r.version, title: r.title, description: r.description, steps: (r.steps as RecipeStep[]).map((s) => ({ id: s.id, title: s.title, needsRoot: Boolean(s.needsRoot) })) }));
}

/** Per-step log lines kept on a command, and their limits (a step that prints without end is cut, not stored whole). */
export const RECIPE_LOG_MAX_BYTES = 256 * 1024;
export const RECIPE_LOG_LINE_MAX = 2000;
