// bench/results.json and bench/RESULTS.md, written together from the benchmark's two parts: the speed
// configs (results.json's top-level fields) and the checkpoint section (its "checkpoint" field). A run
// that skips a part keeps that part from the existing results.json, so `npm run bench -- checkpoint`
// leaves the speed tables as they were, and `npm run bench -- small` the checkpoint section.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { UserError } from "../base/errors.ts";
import type { CheckpointResults } from "./checkpoint.ts";
import type { OffloadSection } from "./offload.ts";
import type { CapacityResults } from "./capacity.ts";
import type { CapacityTargetsResults } from "./capacity_targets.ts";
import type { PlanningResults } from "./planning.ts";
import type { FusionResults } from "./fusion.ts";
import type { HostAdamwResults } from "./host_adamw.ts";
import type { DiskTierResults } from "./disk_tier.ts";
import type { OverlapResults } from "./overlap.ts";
import { resultsMarkdown } from "./report.ts";
import type { BenchResults } from "./results.ts";

export interface BenchParts {
  speed: BenchResults | null;
  checkpoint: CheckpointResults | null;
  offload: OffloadSection | null;
  capacity: CapacityResults | null;
  capacityTargets: CapacityTargetsResults | null;
  planning: PlanningResults | null;
  fusion: FusionResults | null;
  hostAdamw: HostAdamwResults | null;
  diskTier: DiskTierResults | null;
  overlap: OverlapResults | null;
}

type ResultsJson = Partial<BenchResults> & {
  checkpoint?: CheckpointResults;
  offload?: OffloadSection;
  capacity?: CapacityResults;
  capacity_targets?: CapacityTargetsResults;
  planning?: PlanningResults;
  fusion?: FusionResults;
  host_adamw?: HostAdamwResults;
  disk_tier?: DiskTierResults;
  overlap?: OverlapResults;
};

/** No part measured yet. */
export function noResults(): BenchParts {
  return {
    speed: null,
    checkpoint: null,
    offload: null,
    capacity: null,
    capacityTargets: null,
    planning: null,
    fusion: null,
    hostAdamw: null,
    diskTier: null,
    overlap: null,
  };
}

/** The parts in `dir`/results.json; none where the file does not exist yet. */
export function readResults(dir: string): BenchParts {
  const file = path.join(dir, "results.json");
  if (!existsSync(file)) return noResults();
  let json: ResultsJson;
  try {
    json = JSON.parse(readFileSync(file, "utf8")) as ResultsJson;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new UserError(`${file}: not valid JSON (${why}); delete it, or run the whole benchmark`);
  }
  const { checkpoint, offload, capacity, capacity_targets, planning, fusion, host_adamw, disk_tier, overlap, ...speed } = json;
  return {
    speed: speed.configs ? (speed as BenchResults) : null,
    checkpoint: checkpoint ?? null,
    offload: offload ?? null,
    capacity: capacity ?? null,
    capacityTargets: capacity_targets ?? null,
    planning: planning ?? null,
    fusion: fusion ?? null,
    hostAdamw: host_adamw ?? null,
    diskTier: disk_tier ?? null,
    overlap: overlap ?? null,
  };
}

/** Writes the fresh parts over the kept ones; returns the Markdown written. */
export function writeResults(dir: string, fresh: BenchParts, kept: BenchParts): string {
  const speed = fresh.speed ?? kept.speed;
  const checkpoint = fresh.checkpoint ?? kept.checkpoint;
  const offload = fresh.offload ?? kept.offload;
  const capacity = fresh.capacity ?? kept.capacity;
  const capacityTargets = fresh.capacityTargets ?? kept.capacityTargets;
  const planning = fresh.planning ?? kept.planning;
  const fusion = fresh.fusion ?? kept.fusion;
  const hostAdamw = fresh.hostAdamw ?? kept.hostAdamw;
  const diskTier = fresh.diskTier ?? kept.diskTier;
  const overlap = fresh.overlap ?? kept.overlap;
  const json = {
    ...speed,
    ...(checkpoint && { checkpoint }),
    ...(offload && { offload }),
    ...(capacity && { capacity }),
    ...(capacityTargets && { capacity_targets: capacityTargets }),
    ...(planning && { planning }),
    ...(fusion && { fusion }),
    ...(hostAdamw && { host_adamw: hostAdamw }),
    ...(diskTier && { disk_tier: diskTier }),
    ...(overlap && { overlap }),
  };
  writeFileSync(path.join(dir, "results.json"), JSON.stringify(json, null, 1) + "\n");
  const markdown = resultsMarkdown(speed, checkpoint, offload, capacity, capacityTargets, planning, fusion, hostAdamw, diskTier, overlap);
  writeFileSync(path.join(dir, "RESULTS.md"), markdown);
  return markdown;
}
