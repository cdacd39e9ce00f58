// The published OpenFeature web SDK with the published OFREP web provider
// (`@openfeature/ofrep-web-provider`), unchanged, as a client of a running Switchyard
// server, in Node. Driven by crates/server/tests/ofrep_web.rs.
//
//   node ofrep_web.cjs --base URL --token TOKEN --cases CASES.json [--watch]
//
// CASES.json is {"context": {...}, "cases": [{"name", "key", "type" (boolean|string|
// number|object), "default"}]}. Prints `initial {name: {value, reason, variant,
// errorCode}}`; with --watch it then waits (up to 60 s) for the provider's
// ConfigurationChanged event and prints `changed {"flags": [...], "results": {...}}`.
// Polling is set to once an hour, so a change seen within the test came over the
// provider's event stream (OFREP ADR 0008). Node has no EventSource before 22, so the
// published `eventsource` package provides the standard one.
'use strict';

const fs = require('fs');

function arg(name) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

let modules;
try {
  const { EventSource } = require('eventsource');
  if (typeof globalThis.EventSource === 'undefined') {
    globalThis.EventSource = EventSource;
  }
  modules = {
    web: require('@openfeature/web-sdk'),
    ofrep: require('@openfeature/ofrep-web-provider'),
  };
} catch (error) {
  console.error(`FATAL: ${error.message}: install the OFREP web provider (scripts/test.sh does)`);
  process.exit(2);
}
const { OpenFeature, ProviderEvents } = modules.web;
const { OFREPWebProvider } = modules.ofrep;

function evaluate(client, cases) {
  const results = {};
  for (const c of cases) {
    const method = {
      boolean: 'getBooleanDetails',
      string: 'getStringDetails',
      number: 'getNumberDetails',
      object: 'getObjectDetails',
    }[c.type];
    const details = client[method](c.key, c.default);
    results[c.name] = {
      value: details.value,
      reason: details.reason ?? null,
      variant: details.variant ?? null,
      errorCode: details.errorCode ?? null,
    };
  }
  return results;
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(arg('cases'), 'utf8'));
  const provider = new OFREPWebProvider({
    baseUrl: arg('base'),
    headers: [['Authorization', `Bearer ${arg('token')}`]],
    pollInterval: 3600 * 1000,
    cacheMode: 'disabled',
  });
  await OpenFeature.setContext(spec.context);
  await OpenFeature.setProviderAndWait(provider);
  const client = OpenFeature.getClient();
  const changed = new Promise((resolve) => {
    client.addHandler(ProviderEvents.ConfigurationChanged, (details) => resolve(details));
  });
  console.log(`initial ${JSON.stringify(evaluate(client, spec.cases))}`);
  if (process.argv.includes('--watch')) {
    const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 60000));
    const details = await Promise.race([changed, timeout]);
    if (!details) {
      console.error('no ConfigurationChanged event within 60 s');
      process.exit(3);
    }
    const flags = details.flagsChanged ?? [];
    console.log(`changed ${JSON.stringify({ flags, results: evaluate(client, spec.cases) })}`);
  }
  await OpenFeature.close();
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
