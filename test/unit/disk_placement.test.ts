// Which offloaded model data the planner puts on disk (plan/disk_tier.ts): under a shrinking host cap,
// the AdamW moments first, then the gradients' host copies, then the parameters, each kind in chunk order
// and only once every offloaded chunk's data of the kinds before it is there; the fewest chunks that fit,
// so that taking the last one back off disk would break the host cap.
import { describe, expect, test } from "vitest";
import gpt2 from "../../samples/gpt2.ts";
import { type CompileOptions, type Plan } from "../../plan/plan.ts";
import { compilePlan } from "../../src/driver/compile.ts";
import { type Offloaded, persistentLayout } from "../../ir/passes/memory_plan.ts";

const config = { vocab: 256, seq: 32, layers: 4, dim: 128, heads: 4 };
const base: CompileOptions = { batch: 2, seq: 32, threads: 2, clip: true, checkpoint: "none" };
const plan = (opts: Partial<CompileOptions> = {}) => compilePlan(gpt2, "samples/gpt2.ts", config, { ...base, ...opts });

type Kind = "moments" | "grads" | "params";
const KINDS: readonly Kind[] = ["moments", "grads", "params"];

/** The chunks each kind of model data is on disk for, read off the layout's names. */
function onDisk(p: Plan): Record<Kind, Set<number>> {
  const sets: Record<Kind, Set<number>> = { moments: new Set(), grads: new Set(), params: new Set() };
  for (const name of p.persistent.onDisk) {
    const [kind, param] = name.startsWith("opt.m.")
      ? (["moments", name.slice(6)] as const)
      : name.startsWith("opt.v.")
        ? (["moments", name.slice(6)] as const)
        : name.startsWith("grad.")
          ? (["grads", name.slice(5)] as const)
          : (["params", name] as const);
    sets[kind].add(p.chunks.chunkOf.get(param)!);
  }
  return sets;
}

describe("the disk tier's placement", () => {
  const resident = plan();
  const deviceMemory = Math.floor(resident.arenaBytes * 0.66);
  const inHost = plan({ deviceMemory });

  test.each([
    [0.8, ["moments"]],
    [0.4, ["moments", "grads"]],
    [0.3, ["moments", "grads", "params"]],
  ] as const)("host cap %f of the offloaded data: %j on disk, kind after kind, the fewest chunks", (share, kinds) => {
    expect(inHost.diskBytes).toBe(0);
    const hostMemory = Math.floor(inHost.hostBytes * share);
    const p = plan({ deviceMemory, hostMemory, diskMemory: 2 ** 30 });
    expect(p.hostBytes).toBeLessThanOrEqual(hostMemory);
    const sets = onDisk(p);
    const schedule = p.checkpoint.schedule!;
    // Which chunks stay on the device is the search's choice; the others are offloaded.
    const offloaded = p.chunks.chunks.map((c) => c.index).filter((i) => !schedule.resident.has(i));
    const used = KINDS.filter((k) => sets[k].size > 0);
    expect(used).toEqual(kinds);
    used.forEach((kind, k) => {
      // A prefix of the offloaded chunks in chunk order; every kind before the last one in use on disk whole.
      expect([...sets[kind]].sort((a, b) => a - b)).toEqual(offloaded.slice(0, sets[kind].size));
      if (k < used.length - 1) expect(sets[kind].size).toBe(offloaded.length);
    });
    // The fewest: the last chunk of the last kind back in host memory breaks the cap.
    const last = used.at(-1)!;
    const fewer = new Set([...sets[last]].slice(0, -1));
    const layout: Offloaded = {
      chunks: p.chunks,
      resident: schedule.resident,
      momentsOnDisk: last === "moments" ? fewer : sets.moments,
      gradsOnDisk: last === "grads" ? fewer : sets.grads,
      paramsOnDisk: last === "params" ? fewer : sets.params,
    };
    expect(persistentLayout(p.train.graph, true, layout).hostBytes).toBeGreaterThan(hostMemory);
  });
});
