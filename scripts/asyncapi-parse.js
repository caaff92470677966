// Validate AsyncAPI documents with @asyncapi/parser (the parser `asyncapi validate` uses);
// prints one JSON line per document: {path, errors: [{path, message}]}.
const { Parser, fromFile } = require('@asyncapi/parser');

async function main() {
  const parser = new Parser();
  for (const path of process.argv.slice(2)) {
    const { diagnostics } = await fromFile(parser, path).parse();
    const errors = diagnostics
      .filter((d) => d.severity === 0)
      .map((d) => ({ path: d.path.join('.'), message: d.message }));
    console.log(JSON.stringify({ path, errors }));
  }
}

main().catch((err) => {
  console.error(`asyncapi parser: ${err.message}`);
  process.exit(2);
});
