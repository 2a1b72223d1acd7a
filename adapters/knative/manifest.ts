/**
 * The Knative resources for an app, from its description:
 *
 * - a ConfigMap whose channel template makes the app's Broker keep events on a NATS JetStream
 *   channel (eventing-natss), and the Broker;
 * - per function with an event trigger, a Service running `petrel serve <function>` (K_SINK the
 *   broker's ingress, so emitted events return to it) and a Trigger subscribing it. A Trigger's
 *   `filter.attributes` can only test exact attribute values, so it filters on `type` when the
 *   pattern names exactly one type; the function evaluates the whole pattern with core/pattern.
 *   Its `delivery` is the function's retry policy: retry = maxAttempts - 1, exponential backoff
 *   from baseDelayMs (Knative has no jitter and no cap: maxDelayMs does not carry over), and the
 *   dead-letter sink.
 *
 * http-triggered functions get no Service here: the petrel ingress serves them. Schedule triggers
 * would need a PingSource, which is not generated.
 */
import { createHash } from 'node:crypto';
import { triggerPattern, type App, type AppFunction } from '../../core/app.js';
import { retryPolicy } from '../../core/delivery.js';

export interface KubernetesResource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

/** A Knative destination: a URI, or a reference to an addressable resource. */
export type Destination = { uri: string } | { ref: { apiVersion: string; kind: string; name: string; namespace?: string } };

export interface KnativeManifestOptions {
  /** The container image holding petrel and the app; its entrypoint runs the petrel CLI. */
  image: string;
  /** Where events go after their last attempt. */
  deadLetterSink: Destination;
  /** The app module's path inside the image, as `petrel serve` takes it. Default `app.ts`. */
  appModule?: string;
  /** Default `default`. */
  namespace?: string;
  /** PETREL_NATS_URL for the functions: completion records and buckets. */
  natsUrl?: string;
  /** A Secret holding PETREL_PG_URL under the key `url`, for functions with tables. */
  pgSecret?: string;
  /** Replicas of the channel's JetStream stream. Default 1. */
  replicas?: number;
}

const LABEL_APP = 'app.kubernetes.io/part-of';
const LABEL_FUNCTION = 'petrel.dev/function';
/** Knative appends `-00001` to a Service's name for its revisions, which must stay within 63 characters. */
const MAX_SERVICE_NAME = 57;

/** Milliseconds as an ISO 8601 duration, as Knative's backoffDelay takes it (200 -> PT0.2S). */
export function isoDuration(ms: number): string {
  return `PT${Math.round(ms) / 1000}S`;
}

/** A DNS-1035 label for the function's Service: `<app>-<function in kebab case>`, shortened with a hash if needed. */
export function serviceName(app: App, fn: AppFunction): string {
  const kebab = (f: AppFunction) => `${app.name}-${f.name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`.replace(/-+/g, '-').replace(/-$/, '');
  const name = kebab(fn);
  const clash = app.functions.some((other) => other !== fn && kebab(other) === name);
  if (name.length <= MAX_SERVICE_NAME && !clash) return name;
  const hash = createHash('sha256').update(fn.name).digest('hex').slice(0, 6);
  return `${name.slice(0, MAX_SERVICE_NAME - 7).replace(/-$/, '')}-${hash}`;
}

/** The one exact type a pattern names, if it names exactly one: what a Trigger can filter on. */
function exactType(pattern: Record<string, unknown> | undefined): string | undefined {
  const type = pattern?.type;
  return Array.isArray(type) && type.length === 1 && typeof type[0] === 'string' ? type[0] : undefined;
}

function delivery(policy: { maxAttempts: number; baseDelayMs: number }, deadLetterSink: Destination): Record<string, unknown> {
  return { retry: policy.maxAttempts - 1, backoffPolicy: 'exponential', backoffDelay: isoDuration(policy.baseDelayMs), deadLetterSink };
}

export function knativeManifest(app: App, options: KnativeManifestOptions): KubernetesResource[] {
  const namespace = options.namespace ?? 'default';
  const labels = { [LABEL_APP]: app.name };
  const channelConfig = `${app.name}-channel`;
  const maxTimeoutMs = Math.max(...app.functions.map((f) => f.spec.timeoutMs));
  const channel = {
    apiVersion: 'messaging.knative.dev/v1alpha1',
    kind: 'NatsJetStreamChannel',
    spec: {
      stream: { config: { retention: 'Limits', storage: 'File', discard: 'Old', maxAge: '168h', duplicateWindow: '2m', replicas: options.replicas ?? 1 } },
      consumerConfigTemplate: { deliverPolicy: 'New', ackWait: `${Math.ceil(maxTimeoutMs / 1000) + 30}s` },
    },
  };
  const resources: KubernetesResource[] = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: channelConfig, namespace, labels },
      data: { 'channel-template-spec': JSON.stringify(channel, null, 2) },
    },
    {
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      metadata: { name: app.name, namespace, labels, annotations: { 'eventing.knative.dev/broker.class': 'MTChannelBasedBroker' } },
      spec: { config: { apiVersion: 'v1', kind: 'ConfigMap', name: channelConfig, namespace }, delivery: delivery(retryPolicy(), options.deadLetterSink) },
    },
  ];
  const brokerIngress = `http://broker-ingress.knative-eventing.svc.cluster.local/${namespace}/${app.name}`;
  for (const fn of app.functions) {
    const pattern = triggerPattern(fn.spec.trigger, fn.name);
    if (!pattern) continue;
    const name = serviceName(app, fn);
    const fnLabels = { ...labels, [LABEL_FUNCTION]: fn.name };
    const usesTables = Object.keys(fn.spec.uses).some((r) => app.resources[r]?.kind === 'table');
    const env: Array<Record<string, unknown>> = [{ name: 'K_SINK', value: brokerIngress }];
    if (options.natsUrl) env.push({ name: 'PETREL_NATS_URL', value: options.natsUrl });
    if (usesTables && options.pgSecret) env.push({ name: 'PETREL_PG_URL', valueFrom: { secretKeyRef: { name: options.pgSecret, key: 'url' } } });
    resources.push({
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name, namespace, labels: fnLabels },
      spec: {
        template: {
          metadata: { labels: fnLabels },
          spec: {
            // Knative's queue-proxy holds back requests past this; ordered functions take one at a time.
            containerConcurrency: fn.spec.ordered ? 1 : fn.spec.concurrency,
            // The handler's timeout, plus time to commit and POST to K_SINK.
            timeoutSeconds: Math.ceil(fn.spec.timeoutMs / 1000) + 10,
            containers: [
              {
                name: 'function',
                image: options.image,
                args: ['serve', fn.name, options.appModule ?? 'app.ts'],
                ports: [{ containerPort: 8080 }],
                env,
                readinessProbe: { httpGet: { path: '/readyz' } },
                livenessProbe: { httpGet: { path: '/healthz' } },
              },
            ],
          },
        },
      },
    });
    const type = exactType(pattern);
    resources.push({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: { name, namespace, labels: fnLabels, annotations: { 'petrel.dev/pattern': JSON.stringify(pattern) } },
      spec: {
        broker: app.name,
        ...(type ? { filter: { attributes: { type } } } : {}),
        subscriber: { ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name } },
        delivery: delivery(retryPolicy(fn.spec.retry), options.deadLetterSink),
      },
    });
  }
  return resources;
}
