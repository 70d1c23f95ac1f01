#!/usr/bin/env node
// The `snapplane` command: runs the bundled CLI built by `npm run build` (npm install runs it).
import '../dist/cli/snapplane.mjs';
