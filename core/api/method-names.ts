/**
 * The method names of the contract as a plain list (no schemas), for code that must stay small, such as
 * Electron's sandboxed preload. The checks below fail to compile when it and the method table disagree.
 */
import type { MethodName } from './methods.js';

export const METHOD_LIST = [
  'hostInfo',
  'volumeList',
  'volumeOpen',
  'volumeForget',
  'volumeCreate',
  'volumeInfo',
  'volumeSync',
  'fsck',
  'ls',
  'mkdir',
  'rm',
  'mv',
  'put',
  'writeFile',
  'snapList',
  'snapCreate',
  'snapDelete',
  'snapRename',
  'snapHold',
  'masterMark',
  'masterList',
  'masterRelease',
  'snapDiff',
  'space',
  'snapRestore',
  'restoreToHost',
  'revertPreview',
  'snapRevert',
  'planes',
  'planeTiles',
  'blockInfo',
  'imageEval',
  'imageSave',
  'imageList',
  'imageDelete',
  'imagePlan',
  'sendDryRun',
  'jobStart',
  'jobCancel',
  'jobList',
  'jobHistory',
  'scheduleAdd',
  'scheduleList',
  'scheduleRemove',
  'scheduleRun',
  'mirrorList',
  'mirrorCreate',
  'mirrorSet',
  'mirrorBreak',
  'mirrorDelete',
  'replicatePreview',
  'keyFileWarning',
] as const satisfies readonly MethodName[];

type Listed = (typeof METHOD_LIST)[number];
const _noneMissing: [Exclude<MethodName, Listed>] extends [never] ? true : false = true;
void _noneMissing;
