// `npm run gen:contract`: writes the files generated from the run contract (runtime/run_contract.ts).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { renderContract, repoRoot } from "./render.ts";

for (const [file, text] of renderContract()) {
  writeFileSync(path.join(repoRoot, file), text);
  console.log(`wrote ${file}`);
}
