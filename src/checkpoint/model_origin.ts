// A checkpoint names the model file it was trained from by a path relative to its own folder, with the
// file's sha256 (the runtime writes both, runtime/core/session.cpp), so that it can be opened from any
// folder and a model file edited since the save is noticed.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { UserError } from "../../base/errors.ts";

export interface ModelOrigin {
  /** The model file, resolved against the checkpoint's folder. */
  modelPath: string;
  sha256?: string;
  config: Record<string, number>;
}

export function fileSha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** The model named in a checkpoint's "model" metadata. */
export function modelOrigin(checkpoint: string, metadata: Record<string, string>): ModelOrigin {
  let origin: { model?: unknown; sha256?: unknown; config?: unknown };
  try {
    origin = JSON.parse(metadata.model ?? "");
  } catch {
    throw new UserError(`${checkpoint}: not a Stowage checkpoint (its metadata has no "model" entry naming the model file)`);
  }
  if (typeof origin.model !== "string" || typeof origin.config !== "object" || origin.config === null)
    throw new UserError(
      `${checkpoint}: its metadata does not name the model file it was trained from ` +
        "(it was saved by a train binary run without --model-file)",
    );
  const besideCheckpoint = path.resolve(path.dirname(checkpoint), origin.model);
  // Checkpoints written before paths were relative to them named the file relative to the working folder.
  const modelPath = existsSync(besideCheckpoint) || !existsSync(origin.model) ? besideCheckpoint : path.resolve(origin.model);
  if (!existsSync(modelPath))
    throw new UserError(
      `${checkpoint}: the model file it was trained from, ${path.relative(process.cwd(), modelPath) || modelPath}, ` +
        "is not there (the checkpoint names it relative to its own folder)",
    );
  return {
    modelPath,
    config: origin.config as Record<string, number>,
    ...(typeof origin.sha256 === "string" && { sha256: origin.sha256 }),
  };
}

/** The model file's hash a checkpoint recorded, if it did. */
export function savedSha256(metadata: Record<string, string>): string | undefined {
  try {
    const sha256 = (JSON.parse(metadata.model ?? "") as { sha256?: unknown }).sha256;
    return typeof sha256 === "string" ? sha256 : undefined;
  } catch {
    return undefined;
  }
}

/** A warning when the model file changed since the checkpoint was saved, else undefined. */
export function changedSince(checkpoint: string, modelPath: string, savedSha256: string | undefined): string | undefined {
  if (savedSha256 === undefined) return undefined;
  const now = fileSha256(modelPath);
  if (now === savedSha256) return undefined;
  return (
    `warning: ${path.relative(process.cwd(), modelPath) || modelPath} changed since ${checkpoint} was saved ` +
    `(sha256 ${savedSha256.slice(0, 12)}… then, ${now.slice(0, 12)}… now); using the file as it is now`
  );
}
