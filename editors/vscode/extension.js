// The tfspec extension's client: starts `tfspec lsp` (the language server, over stdio)
// for .tfspec and .tfspec.json files. Highlighting (syntaxes/) and the JSON Schema
// (jsonValidation) are declared in package.json and work without the server.
"use strict";
const fs = require("fs");
const path = require("path");
const vscode = require("vscode");

const INSTALL_HINT =
  'Install it with `pip install "tfspec[lsp]"` in the Python environment of your project, ' +
  "or set `tfspec.server.command` to its full path, " +
  'e.g. ["/path/to/.venv/bin/tfspec", "lsp"].';

const DOCUMENTS = [
  { scheme: "file", language: "tfspec" },
  { scheme: "untitled", language: "tfspec" },
  { scheme: "file", language: "json", pattern: "**/*.tfspec.json" },
];

let client = null;

/** The server's command from the settings: [program, ...args]. */
function serverCommand(config) {
  const command = config.get("server.command");
  if (!Array.isArray(command) || command.length === 0 || typeof command[0] !== "string") {
    return ["tfspec", "lsp"];
  }
  return command.map(String);
}

/** The program's full path: as given when it names a path, else the first match on PATH;
 * null when there is none (so the user reads why, instead of "spawn ENOENT"). */
function findProgram(program, env = process.env, platform = process.platform) {
  const isFile = (p) => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  const exts = platform === "win32" ? ["", ...(env.PATHEXT || ".EXE;.CMD;.BAT").split(";")] : [""];
  if (program.includes("/") || program.includes("\\")) {
    return exts.map((e) => program + e).find(isFile) || null;
  }
  for (const dir of (env.PATH || "").split(path.delimiter).filter(Boolean)) {
    const found = exts.map((e) => path.join(dir, program + e)).find(isFile);
    if (found) return found;
  }
  return null;
}

async function start(context) {
  const config = vscode.workspace.getConfiguration("tfspec");
  if (!config.get("server.enabled", true)) return;
  const [program, ...args] = serverCommand(config);
  const resolved = findProgram(program);
  if (resolved === null) {
    const choice = await vscode.window.showErrorMessage(
      `tfspec: cannot start the language server: \`${program}\` was not found. ${INSTALL_HINT}`,
      "Open Settings",
    );
    if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", "tfspec.server");
    }
    return;
  }
  // loaded here, not at the top: the checks above need none of it
  const { LanguageClient, TransportKind } = require("vscode-languageclient/node");
  const serverOptions = { command: resolved, args, transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: DOCUMENTS,
    outputChannelName: "tfspec",
    initializationOptions: { shapes: config.get("shapes.enabled", true) },
  };
  client = new LanguageClient("tfspec", "tfspec", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (err) {
    client = null;
    vscode.window.showErrorMessage(
      `tfspec: \`${[program, ...args].join(" ")}\` did not start a language server ` +
        `(${err && err.message ? err.message : err}). ${INSTALL_HINT} ` +
        "The Output panel ('tfspec') has the server's own messages.",
    );
  }
}

async function stop() {
  if (client !== null) {
    const running = client;
    client = null;
    await running.stop();
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("tfspec.restartServer", async () => {
      await stop();
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("tfspec.server") || event.affectsConfiguration("tfspec.shapes")) {
        await stop();
        await start(context);
      }
    }),
  );
  await start(context);
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate, serverCommand, findProgram, DOCUMENTS };
