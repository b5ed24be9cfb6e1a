// The layers of the code base, checked with the TypeScript compiler's own module resolution (ts-morph):
// each import points down (or within its own folder), and no module imports itself through others.
// ARCHITECTURE.md draws the same layers.
import path from "node:path";
import { Project } from "ts-morph";
import { describe, expect, test } from "vitest";
import { repoRoot } from "../../base/paths.ts";

/**
 * Each folder's layer: a module may import its own folder's modules and those of lower layers. The
 * driver and the CLI form one layer, the application: the driver runs what the CLI parsed, and prints
 * through the CLI's progress line and flag names.
 */
const LAYERS: Readonly<Record<string, number>> = {
  base: 0,
  runtime: 1, // data the generated code and the TypeScript share (runtime/*.json)
  ir: 1,
  "src/util": 1,
  "src/dsl": 2,
  plan: 3,
  "src/data": 3,
  "src/checkpoint": 3,
  "src/targets": 3,
  "src/load": 3,
  codegen: 4,
  native: 4,
  "src/report": 4,
  "src/driver": 5,
  "src/cli": 5,
  samples: 3, // models, written against src/dsl
  bench: 6,
  test: 7, // its helpers; test files themselves are not checked
  scripts: 8, // tooling, such as capturing the plan digests the tests hold
};
const APPLICATION = new Set(["src/driver", "src/cli"]);

/** The folder a repository path belongs to: src/<name>, or the top-level folder. */
function folderOf(relative: string): string {
  const parts = relative.split("/");
  return parts[0] === "src" ? `src/${parts[1]}` : parts[0];
}

const project = new Project({ tsConfigFilePath: path.join(repoRoot, "tsconfig.json") });
const sources = project
  .getSourceFiles()
  .map((file) => ({ file, relative: path.relative(repoRoot, file.getFilePath()) }))
  .filter(({ relative }) => !relative.startsWith("..") && !relative.startsWith("node_modules") && folderOf(relative) !== "test");

/** Each source module's imports of other modules of the repository (re-exports too); `typesOnly` when erased. */
const edges = sources.map(({ file, relative }) => ({
  from: relative,
  to: [...file.getImportDeclarations(), ...file.getExportDeclarations()]
    .map((d) => ({ target: d.getModuleSpecifierSourceFile()?.getFilePath(), typesOnly: d.isTypeOnly() }))
    .filter((i): i is { target: NonNullable<typeof i.target>; typesOnly: boolean } => i.target !== undefined)
    .map((i) => ({ ...i, target: path.relative(repoRoot, i.target) }))
    .filter(({ target }) => !target.startsWith("..") && !target.startsWith("node_modules")),
}));

describe("the layers", () => {
  test("every folder of the code base has a layer", () => {
    const unplaced = [...new Set(sources.map(({ relative }) => folderOf(relative)))].filter((f) => !(f in LAYERS));
    expect(unplaced).toEqual([]);
    expect(sources.length).toBeGreaterThan(100);
  });

  test("imports point down: nothing below the driver and the CLI imports them", () => {
    const upward: string[] = [];
    for (const { from, to } of edges) {
      const [a] = [folderOf(from)];
      for (const { target } of to) {
        const b = folderOf(target);
        const allowed = a === b || LAYERS[b] < LAYERS[a] || (APPLICATION.has(a) && APPLICATION.has(b));
        if (!allowed) upward.push(`${from} imports ${target}`);
      }
    }
    expect(upward).toEqual([]);
  });

  // Imports of types alone are erased before the code runs, and the type checker resolves them lazily.
  test("no module imports itself through others when the code runs", () => {
    const graph = new Map(edges.map(({ from, to }) => [from, to.filter((i) => !i.typesOnly).map((i) => i.target)]));
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (node: string, trail: string[]) => {
      if (state.get(node) === "done") return;
      if (state.get(node) === "open") {
        cycles.push([...trail.slice(trail.indexOf(node)), node].join(" -> "));
        return;
      }
      state.set(node, "open");
      for (const next of graph.get(node) ?? []) visit(next, [...trail, node]);
      state.set(node, "done");
    };
    for (const node of graph.keys()) visit(node, []);
    expect(cycles).toEqual([]);
  });
});
