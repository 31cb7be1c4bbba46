// Runs the networks' own libraries over texts: reads a JSON array of strings
// on stdin, writes one JSON array of results on stdout.
// Used by tests/test_social_conformance.py; not part of dispatch.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { RichText } from '@atproto/api';

const require = createRequire(import.meta.url);
const twitter = require('twitter-text');

const texts = JSON.parse(readFileSync(0, 'utf8'));
const results = texts.map((text) => {
  const tweet = twitter.parseTweet(text);
  const rt = new RichText({ text });
  rt.detectFacetsWithoutResolution();
  return {
    x: { weightedLength: tweet.weightedLength, valid: tweet.valid },
    bluesky: { graphemeLength: rt.graphemeLength, facets: rt.facets ?? [] },
    // The links Mastodon's counting starts from (links with a scheme only).
    urls: twitter.extractUrlsWithIndices(text, { extractUrlsWithoutProtocol: false }),
  };
});
process.stdout.write(JSON.stringify(results));
