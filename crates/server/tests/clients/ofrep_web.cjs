// The published OpenFeature web SDK with the published OFREP web provider
// (`@openfeature/ofrep-web-provider`), unchanged, as a client of a running Switchyard
// server, in Node. Driven by crates/server/tests/ofrep_web.rs.
//
//   node ofrep_web.cjs --base URL --token TOKEN --cases CASES.json [--watch]
//
// CASES.json is {"context": {...}, "cases": [{"name", "key", "type" (boolean|string|
// number|object), "default"}]}. Prints `initial {name: {value, reason, variant,
// errorCode}}`; with --watch it then waits (up to 60 s) for a ConfigurationChanged
// event after which an answer differs, and prints `changed {"flags": [...],
// "results": {...}}`.
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
  // Each ConfigurationChanged event, in order.
  const events = [];
  let wake = () => {};
  client.addHandler(ProviderEvents.ConfigurationChanged, (details) => {
    events.push(details);
    wake();
  });
  const initial = evaluate(client, spec.cases);
  console.log(`initial ${JSON.stringify(initial)}`);
  if (process.argv.includes('--watch')) {
    // The first change after which an answer differs (a provider may also report a
    // refetch that changed nothing).
    const deadline = Date.now() + 60000;
    for (;;) {
      while (events.length === 0) {
        const left = deadline - Date.now();
        if (left <= 0) {
          console.error('no ConfigurationChanged event that changes an answer within 60 s');
          process.exit(3);
        }
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, left);
        });
      }
      const details = events.shift();
      const results = evaluate(client, spec.cases);
      if (JSON.stringify(results) !== JSON.stringify(initial)) {
        const flags = details.flagsChanged ?? [];
        console.log(`changed ${JSON.stringify({ flags, results })}`);
        break;
      }
    }
  }
  await OpenFeature.close();
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
