export { MqttBridge, mqttMessageEvent, mqttTopicFilters, type MqttBridgeOptions, type MqttBridgeTarget } from './bridge.js';
