#!/usr/bin/env node
// Composition root: config -> deps -> start -> signals (see runService in @vecraft/common).
import { runService } from "@vecraft/common";
import { storageConfigSchema } from "./config.js";
import { start } from "./service.js";

runService({
  title: "vecraft storage node",
  name: "storage",
  schema: storageConfigSchema,
  start: start,
  announce: (running, config) => `Vecraft storage node ${config.nodeId} serving on ${running.url}; Ctrl-C to stop`,
});
