/**
 * The generated Knative resources, validated against the CRDs' OpenAPI v3 schemas
 * (/work/shared/conformance/knative-crds, or PETREL_KNATIVE_CRDS) with ajv. Stricter than the API
 * server: an object schema that does not preserve unknown fields is closed here, since Kubernetes
 * would silently prune a field it does not know, and a pruned field is a bug in the generator.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { defineApp, fn, http, on, schedule, table } from '../../core/app.js';
import airQuality from '../../handlers/air-quality/app.js';
import { isoDuration, knativeManifest, serviceName, type KubernetesResource } from './manifest.js';

const CRDS = process.env.PETREL_KNATIVE_CRDS ?? '/work/shared/conformance/knative-crds';
const crdsFound = existsSync(CRDS);
if (!crdsFound) console.warn(`adapters/knative/manifest: no Knative CRDs at ${CRDS} (set PETREL_KNATIVE_CRDS); skipping schema validation`);

type Schema = Record<string, unknown>;

/** Closes every object schema that does not preserve unknown fields (see the header comment). */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Schema = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, closed(value)]));
  if (out.type === 'object' && out.properties && out['x-kubernetes-preserve-unknown-fields'] !== true && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function validators(): Record<string, ValidateFunction> {
  // strictTypes off: the CRDs give `pattern` without `type: string` in places.
  const ajv = new Ajv({ allErrors: true, strictTypes: false });
  ajv.addVocabulary(['x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type']);
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  const byKind: Record<string, ValidateFunction> = {};
  for (const file of ['serving.knative.dev_services.yaml', 'eventing.knative.dev_brokers.yaml', 'eventing.knative.dev_triggers.yaml', 'messaging.knative.dev_natsjetstreamchannels.yaml']) {
    const crd = parse(readFileSync(join(CRDS, file), 'utf8')) as { spec: { group: string; names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }> } };
    for (const version of crd.spec.versions) {
      const schema = closed(version.schema.openAPIV3Schema) as Schema & { properties: Schema };
      // Every object has these; the CRDs leave them to the API server.
      schema.properties = { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, ...schema.properties };
      byKind[`${crd.spec.group}/${version.name} ${crd.spec.names.kind}`] = ajv.compile(schema);
    }
  }
  return byKind;
}

/** Problems of a resource against its CRD, as "<path> <message>" lines; resources without a CRD (ConfigMap) are skipped. */
function problems(validate: Record<string, ValidateFunction>, resource: KubernetesResource | Schema): string[] {
  const check = validate[`${String(resource.apiVersion)} ${String(resource.kind)}`];
  if (!check) return [];
  return check(resource) ? [] : (check.errors ?? []).map((e) => `${e.instancePath} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`);
}

const deadLetterSink = { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'dead-letters' } };
const app = defineApp({
  name: 'shop',
  resources: { orders: table({ partitionKey: 'id' }) },
  functions: {
    placeOrder: fn({ trigger: on({ type: ['order.placed'], data: { total: [{ numeric: ['>', 0] }] } }), uses: { orders: 'write' }, emits: ['order.accepted'], retry: { maxAttempts: 4, baseDelayMs: 1500 }, concurrency: 8, timeoutMs: 45_000, handler: () => undefined }),
    audit: fn({ trigger: on({ type: [{ prefix: 'order.' }] }), ordered: true, handler: () => undefined }),
    both: fn({ trigger: on({ type: ['order.accepted', 'order.refused'] }), retry: { maxAttempts: 1 }, handler: () => undefined }),
    tick: fn({ trigger: schedule('rate(5 minutes)'), handler: () => undefined }),
    list: fn({ trigger: http('GET', '/orders'), uses: { orders: 'read' }, handler: () => ({ body: [] }) }),
  },
});
const byName = (resources: KubernetesResource[], kind: string, name: string) => resources.find((r) => r.kind === kind && r.metadata.name === name)!;

describe('Knative manifest from the app description', () => {
  const resources = knativeManifest(app, { image: 'registry.example/shop:1', deadLetterSink, natsUrl: 'nats://nats:4222', pgSecret: 'shop-pg' });

  it('has a channel ConfigMap, a Broker, and a Service and a Trigger per event function, none for http functions', () => {
    expect(resources.map((r) => `${r.kind} ${r.metadata.name}`)).toEqual([
      'ConfigMap shop-channel',
      'Broker shop',
      'Service shop-place-order',
      'Trigger shop-place-order',
      'Service shop-audit',
      'Trigger shop-audit',
      'Service shop-both',
      'Trigger shop-both',
      'Service shop-tick',
      'Trigger shop-tick',
    ]);
    expect(resources.every((r) => r.metadata.namespace === 'default' && r.metadata.labels?.['app.kubernetes.io/part-of'] === 'shop')).toBe(true);
  });

  it('filters on type only where the pattern names exactly one type, and keeps the whole pattern beside it', () => {
    expect(byName(resources, 'Trigger', 'shop-place-order').spec).toMatchObject({ broker: 'shop', filter: { attributes: { type: 'order.placed' } }, subscriber: { ref: { kind: 'Service', name: 'shop-place-order' } } });
    expect(byName(resources, 'Trigger', 'shop-tick').spec!.filter).toEqual({ attributes: { type: 'petrel.schedule.fired' } });
    expect(byName(resources, 'Trigger', 'shop-audit').spec!.filter).toBeUndefined();
    expect(byName(resources, 'Trigger', 'shop-both').spec!.filter).toBeUndefined();
    expect(JSON.parse(byName(resources, 'Trigger', 'shop-place-order').metadata.annotations!['petrel.dev/pattern'])).toEqual({ type: ['order.placed'], data: { total: [{ numeric: ['>', 0] }] } });
  });

  it("turns each function's retry policy into the Trigger's delivery", () => {
    expect(byName(resources, 'Trigger', 'shop-place-order').spec!.delivery).toEqual({ retry: 3, backoffPolicy: 'exponential', backoffDelay: 'PT1.5S', deadLetterSink });
    expect(byName(resources, 'Trigger', 'shop-audit').spec!.delivery).toEqual({ retry: 4, backoffPolicy: 'exponential', backoffDelay: 'PT0.2S', deadLetterSink });
    expect(byName(resources, 'Trigger', 'shop-both').spec!.delivery).toMatchObject({ retry: 0 });
    expect([isoDuration(200), isoDuration(60_000), isoDuration(5)]).toEqual(['PT0.2S', 'PT60S', 'PT0.005S']);
  });

  it('runs `petrel serve <function>` per Service, with its concurrency, timeout, probes, K_SINK and stores', () => {
    const template = byName(resources, 'Service', 'shop-place-order').spec!.template as { spec: { containerConcurrency: number; timeoutSeconds: number; containers: Array<Record<string, unknown>> } };
    expect(template.spec.containerConcurrency).toBe(8);
    expect(template.spec.timeoutSeconds).toBe(55);
    expect(template.spec.containers[0]).toMatchObject({
      image: 'registry.example/shop:1',
      args: ['serve', 'placeOrder', 'app.ts'],
      readinessProbe: { httpGet: { path: '/readyz' } },
      livenessProbe: { httpGet: { path: '/healthz' } },
      env: [
        { name: 'K_SINK', value: 'http://broker-ingress.knative-eventing.svc.cluster.local/default/shop' },
        { name: 'PETREL_NATS_URL', value: 'nats://nats:4222' },
        { name: 'PETREL_PG_URL', valueFrom: { secretKeyRef: { name: 'shop-pg', key: 'url' } } },
      ],
    });
    const audit = byName(resources, 'Service', 'shop-audit').spec!.template as { spec: { containerConcurrency: number; containers: Array<{ env: unknown[] }> } };
    expect(audit.spec.containerConcurrency).toBe(1);
    expect(audit.spec.containers[0].env).toHaveLength(2);
  });

  it('names Services as DNS labels that leave room for revision suffixes, distinct even when function names collide', () => {
    const clash = defineApp({
      name: 'a-rather-long-application-name-for-tests',
      functions: {
        sendEmail: fn({ trigger: on({ type: ['x'] }), handler: () => undefined }),
        'send-email': fn({ trigger: on({ type: ['x'] }), handler: () => undefined }),
        aVeryLongFunctionNameThatKeepsGoingAndGoing: fn({ trigger: on({ type: ['x'] }), handler: () => undefined }),
      },
    });
    const names = clash.functions.map((f) => serviceName(clash, f));
    expect(new Set(names).size).toBe(3);
    for (const name of names) {
      expect(name.length).toBeLessThanOrEqual(57);
      expect(name).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  describe.skipIf(!crdsFound)('against the Knative CRD schemas', () => {
    const validate = crdsFound ? validators() : {};

    it('validates every Broker, Service and Trigger, and the NatsJetStreamChannel template', () => {
      for (const target of [resources, knativeManifest(airQuality, { image: 'aq:1', deadLetterSink: { uri: 'http://dead-letters.default.svc.cluster.local' }, namespace: 'aq', replicas: 3 })]) {
        const checked = target.filter((r) => r.kind !== 'ConfigMap');
        expect(checked.length).toBeGreaterThan(2);
        for (const resource of checked) expect({ resource: `${resource.kind} ${resource.metadata.name}`, problems: problems(validate, resource) }).toEqual({ resource: `${resource.kind} ${resource.metadata.name}`, problems: [] });
        const channel = parse(target.find((r) => r.kind === 'ConfigMap')!.data!['channel-template-spec']) as Schema;
        expect(channel.kind).toBe('NatsJetStreamChannel');
        expect(problems(validate, channel)).toEqual([]);
      }
    });

    it('catches resources the API server would reject or prune', () => {
      const trigger = structuredClone(byName(resources, 'Trigger', 'shop-place-order')) as KubernetesResource & { spec: { delivery: Schema; filter: Schema } };
      trigger.spec.delivery.retry = '3';
      trigger.spec.filter = { attribute: { type: 'x' } };
      expect(problems(validate, trigger)).toEqual(['/spec/delivery/retry must be integer', '/spec/filter must NOT have additional properties (attribute)']);
      const service = structuredClone(byName(resources, 'Service', 'shop-audit')) as KubernetesResource & { spec: { template: { spec: Schema } } };
      service.spec.template.spec.containerConcurrency = '1';
      service.spec.template.spec.containers = [{ image: 'x', ports: [{ containerPort: 2 ** 31 }] }];
      expect(problems(validate, service)).toEqual(['/spec/template/spec/containerConcurrency must be integer', '/spec/template/spec/containers/0/ports/0/containerPort must match format "int32"']);
    });
  });
});
