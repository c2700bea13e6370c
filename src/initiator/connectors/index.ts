/**
 * Imports every connector module so that each registers itself with the factory.
 * Add one line per protocol.
 *
 * @module
 */
import './local.js';
import './nvmeof.js';
import './iscsi/index.js';
import './aoe.js';
import './remotefs.js';
import './rbd.js';
import './huawei_sdshypervisor.js';
import './fibre_channel.js';
