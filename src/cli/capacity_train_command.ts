// The `stow train` command line that trains what `stow capacity` answered: the user's own flags as typed
// (budgets, --target, --batch, --set, ...), less those capacity chose or only capacity reads, plus its
// choices: the member's model flags, --grad-accum, --dp/--zero for --ranks, the device budget it planned
// for, and a --disk-path placeholder where train needs one. `stow plan` given the same flags plans the
// answered model (test/system/capacity.test.ts).
import { formatBytes, parseSize } from "../../base/units.ts";

/** Flags capacity decides or reads alone: they take a value, except those in BOOLEAN. */
const DROPPED = new Set(["--preset", "--seq", "--grad-accum", "--ranks", "--json"]);
const BOOLEAN = new Set(["--json"]);

export interface Answer {
  /** The flags that choose the answered member (family.flags). */
  memberFlags: string[];
  gradAccum: number;
  /** --ranks N, or 1. */
  ranks: number;
  deviceMemory: number;
}

/** `args`: what followed `stow capacity` on the command line, the model file among them. */
export function trainCommand(args: string[], answer: Answer): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const [flag] = args[i].split("=", 1);
    if (DROPPED.has(flag)) {
      if (!args[i].includes("=") && !BOOLEAN.has(flag)) i++;
      continue;
    }
    kept.push(args[i]);
  }
  const given = (flag: string) => kept.some((a) => a === flag || a.startsWith(`${flag}=`));
  return [
    "stow",
    "train",
    ...kept,
    ...answer.memberFlags,
    "--grad-accum",
    `${answer.gradAccum}`,
    ...(answer.ranks > 1 ? ["--dp", `${answer.ranks}`, "--zero", "3"] : []),
    ...(given("--device-memory") ? [] : ["--device-memory", sizeText(answer.deviceMemory)]),
    ...(given("--disk-memory") && !given("--disk-path") ? ["--disk-path", "DIR"] : []),
  ];
}

/** The size in binary units when that reads back exactly, else in bytes. */
function sizeText(bytes: number): string {
  const text = formatBytes(bytes).replace(" ", "");
  return parseSize("--device-memory", text) === bytes ? text : `${bytes}`;
}

/** The command line as a shell would take it: words with unusual characters single-quoted. */
export function shellLine(words: string[]): string {
  return words.map((w) => (/^[\w./=:,@%+-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(" ");
}
