/**
 * The CMMVC messages the FlashSystem simulator prints, with the texts the Storwize/SVC family
 * prints for them (from the IBM Spectrum Virtualize message reference as the Storwize and
 * FlashSystem Cinder test simulators reproduce it).
 *
 * @module
 */

/** The message catalogue: code -> text. */
export const CMMVC_MESSAGES: Readonly<Record<string, string>> = {
  CMMVC5701E: 'No object ID was specified.',
  CMMVC5707E: 'Required parameters are missing.',
  CMMVC5709E: 'The parameter that was entered is not a supported parameter.',
  CMMVC5741E: 'The target virtual disk (VDisk) is the same as the source VDisk.',
  CMMVC5753E: 'The specified object does not exist or is not a suitable candidate.',
  CMMVC5754E: 'The specified object does not exist, or the name supplied does not meet the naming rules.',
  CMMVC5786E: 'The action failed because the cluster is not in a stable state.',
  CMMVC5840E:
    'The virtual disk (VDisk) was not deleted because it is mapped to a host or because it is part of a FlashCopy or Remote Copy mapping, or is involved in an image mode migrate.',
  CMMVC5842E: 'The action failed because an object that was specified in the command does not exist.',
  CMMVC5860E: 'The action failed because there were not enough extents in the managed disk group.',
  CMMVC5871E: 'The action failed because one or more of the configured port names is in a mapping.',
  CMMVC5879E: 'The virtual disk-to-host mapping was not created because a VDisk is already mapped to this host with this SCSI LUN.',
  CMMVC5903E: 'The FlashCopy mapping was not changed because the mapping or consistency group is in another state.',
  CMMVC5907E: 'The FlashCopy mapping or consistency group was not started because the mapping or consistency group is not in the prepared state.',
  CMMVC5924E: 'The FlashCopy mapping was not created because the source and target virtual disks (VDisks) are different sizes.',
  CMMVC6035E: 'The action failed as the object already exists.',
  CMMVC6045E: 'The action failed, as the -force flag was not entered.',
  CMMVC6051E: 'An unsupported action was selected.',
  CMMVC6070E: 'An invalid or duplicated parameter, unaccompanied argument, or incorrect argument sequence has been detected. Ensure that the input is as per the help.',
  CMMVC6071E: 'The VDisk-to-host mapping was not created because the VDisk is already mapped to a host.',
  CMMVC6527E:
    'The name that you have entered is not valid. The name can contain letters, numbers, spaces, periods, dashes, and underscores. The name must begin with a letter or an underscore. The name must not begin or end with a space.',
  CMMVC6581E: 'The command has failed because the maximum number of allowed iSCSI qualified names (IQNs) has been reached, or the IQN is invalid or already exists.',
  CMMVC7205E: 'The command failed because it is not supported.',
};

/** A CLI failure: printed as `<code> <text>` on stderr with exit status 1. */
export class CliError extends Error {
  readonly code: string;
  constructor(code: string, text?: string) {
    super(`${code} ${text ?? CMMVC_MESSAGES[code] ?? 'The command can not be executed successfully.'}`);
    this.name = 'CliError';
    this.code = code;
  }
}
