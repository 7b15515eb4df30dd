-- OpenCDMO on Citus: every tenant table distributed by tenant_id, all colocated with one
-- anchor table (a tenant's rows of every table sit on the same node, so a tenant's joins and
-- transactions stay on one node); the HUB and the other global tables as reference tables (a
-- copy on every node, so tenant tables can join them and keep their foreign keys to them).
--
-- Run once on the coordinator, as the owner role, on a database that `opencdmo db upgrade`
-- has brought to the latest migration (before the app takes traffic): see README.md beside
-- this file for what Citus needs first and what is not proven here.
-- The catalogue test (tests/integration/test_citus.py) reads this file: every table of the
-- schema is named exactly once below, as distributed, reference or local-only.
--
-- local-only: alembic_version: read and written by the migrations alone, on the coordinator
-- (partitions of equipment_samples are not named: they follow their distributed parent)

\set ON_ERROR_STOP on
BEGIN;
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

-- Reference tables, each after the tables its foreign keys point at. hub_items and
-- hub_versions point at each other: the edge hub_items -> hub_versions is dropped for the
-- conversion and added back once both are reference tables.
ALTER TABLE hub_items DROP CONSTRAINT hub_items_forked_from_version_id_fkey;
SELECT create_reference_table('tenants');
SELECT create_reference_table('users');
SELECT create_reference_table('hub_items');
SELECT create_reference_table('hub_versions');
ALTER TABLE hub_items ADD CONSTRAINT hub_items_forked_from_version_id_fkey
    FOREIGN KEY (forked_from_version_id) REFERENCES hub_versions (id);
SELECT create_reference_table('hub_dependencies');
SELECT create_reference_table('hub_search_terms');
SELECT create_reference_table('hub_shares');
SELECT create_reference_table('login_failures');
SELECT create_reference_table('security_events');
SELECT create_reference_table('security_head');
SELECT create_reference_table('sessions');
-- the job queue: claimed by the job workers on the coordinator, its rows written to every node
SELECT create_reference_table('background_jobs');
-- single sign-on: people's provider identities and the sign-ins under way (global)
SELECT create_reference_table('sso_identities');
SELECT create_reference_table('sso_requests');

-- Distributed tables, each after the tables its foreign keys point at; memberships is the anchor
-- of the colocation group.
SELECT create_distributed_table('memberships', 'tenant_id');
SELECT create_distributed_table('api_tokens', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('audit_events', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('audit_heads', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('master_recipes', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('recipe_revisions', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('signatures', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('sites', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batches', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('library_items', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('materials', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('stored_files', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('lots', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('notifications_sent', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('storage_locations', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('lot_containers', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_consumptions', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_custody', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_entries', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('equipment', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_equipment', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('deviations', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_exceptions', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_excursions', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_identity_checks', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_number_counters', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_phases', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_reservations', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_setpoint_writes', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batch_verifications', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('batchml_imports', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('capture_leases', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('capture_workers', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('container_moves', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('control_recipes', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('equipment_logbook', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('equipment_samples', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('excursion_cursors', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('exports', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('genealogy_links', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('invitations', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('lot_status_changes', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('opcua_trusted_certificates', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('partner_links', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('pinned_contents', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('recipe_documents', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('role_assignments', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('sample_seals', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('search_terms', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('site_role_assignments', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('transfer_packages', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('transfer_imports', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('transfer_jobs', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('transfer_mappings', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('transfer_sends', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('transfer_signing_keys', 'tenant_id', colocate_with => 'memberships');
SELECT create_distributed_table('transfer_trusted_keys', 'tenant_id', colocate_with => 'memberships');

COMMIT;
