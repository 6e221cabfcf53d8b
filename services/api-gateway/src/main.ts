#!/usr/bin/env node
// Composition root: config -> deps -> start -> signals (see runService in @vecraft/common).
import { runService } from "@vecraft/common";
import { gatewayConfigSchema } from "./config.js";
import { start } from "./service.js";

runService({
  title: "vecraft api gateway",
  name: "gateway",
  schema: gatewayConfigSchema,
  start: start,
  announce: (running) => `Vecraft gateway serving on ${running.url}; Ctrl-C to stop`,
});
