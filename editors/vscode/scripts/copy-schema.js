#!/usr/bin/env node
// Copies tfspec's JSON Schema (spec/tfspec.schema.json, the one source) into the
// extension as schemas/tfspec.schema.json. VS Code's `jsonValidation` takes a URL or a
// path inside the extension folder, and `vsce package` packs only that folder, so the
// extension carries a copy. npm runs this on `npm install`/`npm ci` ("prepare") and
// vsce before packaging ("vscode:prepublish"); the copy is git-ignored, never edited.
"use strict";
const fs = require("fs");
const path = require("path");

const source = path.join(__dirname, "..", "..", "..", "spec", "tfspec.schema.json");
const target = path.join(__dirname, "..", "schemas", "tfspec.schema.json");

const text = fs.readFileSync(source);
JSON.parse(text); // a broken schema stops the build here, not in the editor
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.writeFileSync(target, text);
