#!/usr/bin/env node
// certgate runs its TypeScript sources directly (Node 24 type stripping): no build step.
import "../src/cli.js";
