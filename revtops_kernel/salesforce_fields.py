"""The fields each Salesforce object is read with: declared once, for the connector (its
SELECT list) and the normalizer (what it may read). A field a query does not name never
arrives, and naming a field the org lacks fails the whole query (INVALID_FIELD), so a field
only some orgs have is ``optional``: the connector names it when the object's ``describe``
lists it. ``tests/normalize/test_fields_requested.py`` checks every normalizer read against
this list. Changing a list re-reads that object once (the connector's checkpoint names it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SObjectFields:
    fields: tuple[str, ...]
    # Named only when the org has them: CurrencyIsoCode exists in multi-currency orgs only.
    optional: tuple[str, ...] = ()
    # Read whole every time (small, and without a useful change stamp for us).
    incremental: bool = True

    @property
    def readable(self) -> tuple[str, ...]:
        """Every field a normalizer may read."""
        return (*self.fields, *self.optional)


_COMMON = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
_ACTIVITY = ("Subject", "Description")
_LINKS = ("WhoId", "WhatId", "AccountId", "OwnerId")

# In read order: users and stages before the records that point at them.
OBJECTS: dict[str, SObjectFields] = {
    "User": SObjectFields(
        ("Id", "Name", "FirstName", "LastName", "Email", "Username", "IsActive", "CreatedDate",
         "LastModifiedDate", "SystemModstamp"),
    ),
    "OpportunityStage": SObjectFields(
        ("Id", "ApiName", "MasterLabel", "DefaultProbability", "ForecastCategory",
         "ForecastCategoryName", "IsActive", "IsClosed", "IsWon", "SortOrder", "CreatedDate",
         "LastModifiedDate", "SystemModstamp"),
        incremental=False,
    ),
    "Account": SObjectFields(
        (*_COMMON, "Name", "Industry", "Type", "Website", "OwnerId", "NumberOfEmployees",
         "AnnualRevenue", "BillingCity", "BillingCountry"),
    ),
    "Contact": SObjectFields(
        (*_COMMON, "FirstName", "LastName", "Email", "Title", "Phone", "AccountId", "OwnerId",
         "Name", "MobilePhone"),
    ),
    "Opportunity": SObjectFields(
        (*_COMMON, "Name", "Amount", "StageName", "CloseDate", "IsClosed", "IsWon",
         "Probability", "ForecastCategoryName", "Type", "LeadSource", "OwnerId", "AccountId",
         "LastStageChangeDate"),
        optional=("CurrencyIsoCode",),
    ),
    # Stage, amount and close-date snapshots (deal_stage_history; deal_field_history is
    # derived from them: store.deal_field_history says why not OpportunityFieldHistory).
    "OpportunityHistory": SObjectFields(
        ("Id", "IsDeleted", "OpportunityId", "StageName", "Amount", "Probability",
         "ForecastCategory", "CloseDate", "CreatedDate", "SystemModstamp"),
    ),
    "OpportunityContactRole": SObjectFields(
        (*_COMMON, "OpportunityId", "ContactId", "Role", "IsPrimary"),
    ),
    "Task": SObjectFields(
        (*_COMMON, *_ACTIVITY, "ActivityDate", "Status", "TaskSubtype", "CallType",
         "CallDurationInSeconds", *_LINKS, "CompletedDateTime"),
    ),
    "Event": SObjectFields(
        (*_COMMON, *_ACTIVITY, "StartDateTime", "EndDateTime", "ActivityDateTime",
         "DurationInMinutes", "IsAllDayEvent", "Location", *_LINKS, "ActivityDate"),
    ),
}  # fmt: skip
