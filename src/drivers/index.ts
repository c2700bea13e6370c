/**
 * Imports every driver module so that each registers itself with the driver registry.
 * Add one line per driver.
 *
 * @module
 */
import './file/driver.js';
import './lvm/index.js';
import './ibm-flashsystem/index.js';
import './netapp-eseries/index.js';
