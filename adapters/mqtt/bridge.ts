/**
 * MQTT to petrel: subscribes to the topic filters of the app's `mqtt(...)` triggers at QoS 1 and
 * publishes each message as a `petrel.mqtt.message` CloudEvent through the ingress target, and
 * only then acknowledges it (PUBACK). A message is therefore either durable in petrel or still the
 * broker's to redeliver: with a persistent session (the default, `clean: false` under a fixed
 * client id) that holds across a restart of the bridge too. Redelivery after a crash between
 * "durable" and "acknowledged" gives a second event (new id), so handlers make their effects
 * idempotent by content (the air-quality app keys readings by device and time).
 *
 * Messages are handed on one at a time in arrival order (mqtt.js delivers the next only after the
 * previous is acknowledged), so per-topic order is kept; while the target sheds load the bridge
 * waits, and the backlog stays at the broker.
 */
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { MQTT_MESSAGE_TYPE, topicMatches, type App, type MqttMessageData } from '../../core/app.js';
import { newEventId, traceparentFor, type CloudEvent } from '../../core/event.js';
import type { Logger } from '../../core/ports.js';
import { redactUrl } from '../../core/redact.js';
import type { IngressTarget } from '../http/types.js';

export type MqttBridgeTarget = Pick<IngressTarget, 'app' | 'publish' | 'overloaded'>;

export interface MqttBridgeOptions {
  /** Broker URL, e.g. mqtt://127.0.0.1:1883 (credentials may be in it). */
  url: string;
  logger: Logger;
  /** Default `petrel-<app name>`; two bridges of one app share the session, so give each its own. */
  clientId?: string;
  /** Default false: a persistent session keeps QoS 1 messages for the bridge while it is away. */
  clean?: boolean;
}

/** The topic filters of an app's mqtt triggers, each once. */
export function mqttTopicFilters(app: App): string[] {
  return [...new Set(app.functions.flatMap((f) => (f.spec.trigger.kind === 'mqtt' ? [f.spec.trigger.topic] : [])))];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The CloudEvent for one MQTT message: subject = topic, data.filters = the app's filters it matches. */
export function mqttMessageEvent(app: App, filters: readonly string[], packet: Pick<IPublishPacket, 'topic' | 'payload' | 'qos' | 'retain'>, now = new Date()): CloudEvent<MqttMessageData> {
  const bytes = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : Buffer.from(packet.payload);
  let payload: Pick<MqttMessageData, 'payload' | 'payloadBase64'>;
  try {
    payload = { payload: utf8.decode(bytes) };
  } catch {
    payload = { payloadBase64: bytes.toString('base64') };
  }
  const id = newEventId(now.getTime());
  const time = now.toISOString();
  return {
    specversion: '1.0',
    id,
    source: `petrel/${app.name}/mqtt`,
    type: MQTT_MESSAGE_TYPE,
    subject: packet.topic,
    time,
    datacontenttype: 'application/json',
    data: { topic: packet.topic, filters: filters.filter((f) => topicMatches(f, packet.topic)), ...payload, qos: packet.qos, retain: packet.retain },
    // Ordered functions then see one topic's messages in the order they were published.
    partitionkey: packet.topic,
    traceparent: traceparentFor(id),
    ingesttime: time,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class MqttBridge {
  private stopped = false;
  private published = 0;
  private subscribed = false;
  private readonly onSubscribed: Array<() => void> = [];

  private constructor(private readonly client: MqttClient, private readonly target: MqttBridgeTarget, private readonly filters: string[], private readonly logger: Logger) {}

  /**
   * Connects and subscribes; resolves at once (the client keeps reconnecting in the background,
   * so a broker that is down does not stop the runtime). `ready()` resolves once subscribed.
   */
  static start(target: MqttBridgeTarget, options: MqttBridgeOptions): MqttBridge {
    const filters = mqttTopicFilters(target.app);
    const client = mqtt.connect(options.url, {
      clientId: options.clientId ?? `petrel-${target.app.name}`,
      clean: options.clean ?? false,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    const bridge = new MqttBridge(client, target, filters, options.logger.child({ component: 'mqtt-bridge' }));
    bridge.wire(options.url);
    return bridge;
  }

  /** Messages published into petrel so far. */
  get count(): number {
    return this.published;
  }

  /** Resolves once connected and subscribed to every filter. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.subscribed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no MQTT subscription after ${timeoutMs} ms; is the broker up?`)), timeoutMs);
      this.onSubscribed.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops taking messages; one being published is left unacknowledged, so the broker redelivers it. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.client.endAsync(true);
  }

  private wire(url: string): void {
    const where = redactUrl(url);
    let reported = false;
    this.client.on('connect', (connack) => {
      reported = false;
      this.logger.info({ broker: where, sessionPresent: connack.sessionPresent }, 'connected to the MQTT broker');
      this.client.subscribe(Object.fromEntries(this.filters.map((topic) => [topic, { qos: 1 as const }])), (error, granted) => {
        const refused = granted?.filter((g) => g.qos === 128) ?? [];
        if (error || refused.length) {
          this.logger.error({ err: error, refused: refused.map((g) => g.topic) }, 'MQTT subscription refused');
          return;
        }
        this.subscribed = true;
        for (const resolve of this.onSubscribed.splice(0)) resolve();
      });
    });
    this.client.on('error', (error) => {
      if (!reported) this.logger.warn({ broker: where, err: { message: error.message } }, 'MQTT broker unreachable; retrying every second');
      reported = true;
    });
    this.client.handleMessage = (packet, callback) => {
      this.deliver(packet).then(
        () => callback(),
        () => undefined, // stopped: no PUBACK, so the broker keeps the message
      );
    };
  }

  /** Publishes one message into petrel, waiting out overload and store errors; rejects only when stopped. */
  private async deliver(packet: IPublishPacket): Promise<void> {
    const event = mqttMessageEvent(this.target.app, this.filters, packet);
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) throw new Error('bridge stopped');
      if (this.target.overloaded()) {
        await sleep(1000);
        continue;
      }
      try {
        await this.target.publish([event]);
        this.published++;
        return;
      } catch (error) {
        if (attempt === 0) this.logger.warn({ err: error, topic: packet.topic }, 'could not publish an MQTT message; retrying');
        await sleep(Math.min(5000, 100 * 2 ** attempt));
      }
    }
  }
}
