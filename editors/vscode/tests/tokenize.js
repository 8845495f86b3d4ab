#!/usr/bin/env node
// Tokenizes files with the extension's TextMate grammar, through vscode-textmate and
// vscode-oniguruma (the engine VS Code itself runs), and prints the tokens as JSON:
// {"<file>": [[line, start, end, [scope, ...]], ...]} with 0-based lines and UTF-16
// columns. tests/test_editors.py checks them against the tfspec parser's own tokens.
"use strict";
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const GRAMMAR = path.join(__dirname, "..", "syntaxes", "tfspec.tmLanguage.json");

async function main(files) {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources) => new oniguruma.OnigScanner(sources),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () =>
      vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, "utf8"), GRAMMAR),
  });
  const grammar = await registry.loadGrammar("source.tfspec");
  const out = {};
  for (const file of files) {
    const tokens = [];
    let stack = vsctm.INITIAL;
    fs.readFileSync(file, "utf8").split(/\r?\n/).forEach((line, i) => {
      const result = grammar.tokenizeLine(line, stack);
      for (const t of result.tokens) {
        tokens.push([i, t.startIndex, Math.min(t.endIndex, line.length), t.scopes]);
      }
      stack = result.ruleStack;
    });
    out[file] = tokens;
  }
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
