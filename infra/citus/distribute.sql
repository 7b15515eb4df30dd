-- Scale-out with Citus: every tenant table distributed by tenant_id, all colocated (a
-- tenant's rows of every table on one node, so a command's joins and its transaction stay on
-- that node); the HUB and the global tables as reference tables (a copy on every node);
-- the platform's own bookkeeping kept on the coordinator. Run once on the coordinator, as
-- the owner, after `opencdmo db upgrade` on an empty database (infra/citus/README.md).
-- tests/integration/test_citus_catalogue.py checks this file against the catalogue: every
-- table is named exactly once, in the right list.

SET citus.propagate_set_commands = 'local';  -- SET LOCAL app.tenant_id reaches the workers
BEGIN;

-- Reference tables: read by every tenant's queries, written rarely.
SELECT create_reference_table('tenants');
SELECT create_reference_table('users');
SELECT create_reference_table('hub_items');
SELECT create_reference_table('hub_versions');
SELECT create_reference_table('hub_dependencies');
SELECT create_reference_table('hub_shares');
SELECT create_reference_table('hub_search_terms');

-- Coordinator tables: the platform's security chain, sign-in sessions and throttling, the
-- background job queue and the migration marker; never joined with a tenant table on a worker.
SELECT citus_add_local_table_to_metadata('security_events');
SELECT citus_add_local_table_to_metadata('security_head');
SELECT citus_add_local_table_to_metadata('sessions');
SELECT citus_add_local_table_to_metadata('login_failures');
SELECT citus_add_local_table_to_metadata('background_jobs');  -- claimed by the job workers
-- alembic_version stays a plain local table.

-- Distributed tables: the anchor first, then every other tenant table colocated with it.
SELECT create_distributed_table('audit_heads', 'tenant_id');
SELECT create_distributed_table('api_tokens', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('audit_events', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_consumptions', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_custody', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_entries', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_equipment', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_exceptions', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_excursions', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_identity_checks', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_number_counters', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_phases', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_reservations', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_setpoint_writes', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batch_verifications', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batches', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('batchml_imports', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('capture_leases', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('capture_workers', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('container_moves', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('control_recipes', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('deviations', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('equipment', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('equipment_logbook', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('equipment_samples', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('excursion_cursors', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('genealogy_links', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('invitations', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('library_items', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('lot_containers', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('lot_status_changes', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('lots', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('master_recipes', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('materials', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('memberships', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('opcua_trusted_certificates', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('partner_links', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('pinned_contents', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('recipe_documents', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('recipe_revisions', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('role_assignments', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('sample_seals', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('search_terms', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('signatures', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('site_role_assignments', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('sites', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('storage_locations', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('stored_files', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('transfer_imports', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('transfer_jobs', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('transfer_mappings', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('transfer_packages', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('transfer_sends', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('transfer_signing_keys', 'tenant_id', colocate_with => 'audit_heads');
SELECT create_distributed_table('transfer_trusted_keys', 'tenant_id', colocate_with => 'audit_heads');

COMMIT;
