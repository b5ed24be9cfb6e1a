#!/usr/bin/env node
// The `stow` executable. The CLI and the user's model are TypeScript, so it registers tsx's loaders first:
// the ESM one, and the CommonJS one for a model that lives in a package without "type": "module" (Node
// then loads it as CommonJS, which the ESM hooks alone do not transpile).
// Source maps go on before anything is transpiled, so that a stack frame in model code points at its .ts
// line (load_model reports errors there); Node maps only the files loaded after this call.
import { register as registerCommonJs } from "tsx/cjs/api";
import { register as registerEsm } from "tsx/esm/api";

process.setSourceMapsEnabled(true);
registerEsm();
registerCommonJs();
// A model file anywhere imports "stowage" as this compiler's DSL (src/load/stowage_package.ts says why).
const { resolveStowageToThisCompiler } = await import("../src/load/stowage_package.ts");
resolveStowageToThisCompiler();
await import("../src/cli/main.ts");
