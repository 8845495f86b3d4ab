// Runs a TensorFlow.js graph model (as tfspec exports it) on a batch of inputs, in
// Node.js with the pure-JS CPU backend: the runtime a browser or Node app uses.
//
//   node predict.js MODEL_DIR INPUTS_JSON
//
// INPUTS_JSON: {"name": {"dtype": "float32", "shape": [n, ...], "data": [...]}, ...}
// keyed by the signature's input names. Prints the outputs in the same form, keyed
// by the signature's output names.
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");

async function main() {
  const [modelDir, inputsPath] = process.argv.slice(2);
  const artifacts = JSON.parse(fs.readFileSync(path.join(modelDir, "model.json"), "utf8"));
  // model.json names its weight shards; fromMemory wants the bytes in manifest order
  const specs = [];
  const shards = [];
  for (const group of artifacts.weightsManifest) {
    specs.push(...group.weights);
    for (const file of group.paths) shards.push(fs.readFileSync(path.join(modelDir, file)));
  }
  const bytes = Buffer.concat(shards);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: artifacts.modelTopology,
    weightSpecs: specs,
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    signature: artifacts.signature,
    userDefinedMetadata: artifacts.userDefinedMetadata,
  }));
  const signature = artifacts.signature || {};
  const inputs = JSON.parse(fs.readFileSync(inputsPath, "utf8"));
  const feed = {};
  for (const [key, value] of Object.entries(inputs)) {
    // the graph's input node for this signature key ("image:0" -> "image")
    const info = (signature.inputs || {})[key];
    const node = info ? info.name.replace(/:0$/, "") : key;
    feed[node] = tf.tensor(value.data, value.shape, value.dtype);
  }
  const outputKeys = Object.keys(signature.outputs || {});
  const nodes = outputKeys.map((key) => signature.outputs[key].name.replace(/:0$/, ""));
  let results = model.execute(feed, nodes.length ? nodes : undefined);
  if (!Array.isArray(results)) results = [results];
  const out = {};
  results.forEach((tensor, i) => {
    out[outputKeys[i] || `output_${i}`] = {
      dtype: tensor.dtype, shape: tensor.shape, data: Array.from(tensor.dataSync()),
    };
  });
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.message || err}\n`);
  process.exit(1);
});
