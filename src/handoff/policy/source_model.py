"""The T-MSIS-style source data model (see ../shared/LEGAL.md).

This module describes what a Medicaid source database holds, including every column the
court did *not* permit. It decides nothing about disclosure: ``order`` does that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

ColumnKind = Literal["text", "code", "date", "timestamp"]


@dataclass(frozen=True)
class SourceColumn:
    name: str
    kind: ColumnKind
    length: int | None = None


ENROLLEES_TABLE = "enrollees"
CLAIMS_TABLE = "claims"

ENROLLEE_COLUMNS: tuple[SourceColumn, ...] = (
    SourceColumn("msis_ident_num", "text", 20),
    SourceColumn("ssn_num", "text", 11),
    SourceColumn("ssn_ind", "code", 1),
    SourceColumn("mdcr_bene_id", "text", 15),
    SourceColumn("msis_case_num", "text", 20),
    SourceColumn("elgbl_1st_name", "text", 40),
    SourceColumn("elgbl_last_name", "text", 40),
    SourceColumn("elgbl_mdl_initl_name", "text", 1),
    SourceColumn("birth_dt", "date"),
    SourceColumn("sex_cd", "code", 1),
    SourceColumn("ethncty_cd", "code", 1),
    SourceColumn("race_ethncty_cd", "code", 2),
    SourceColumn("elgbl_line_1_adr_home", "text", 60),
    SourceColumn("elgbl_line_2_adr_home", "text", 60),
    SourceColumn("elgbl_city_name_home", "text", 40),
    SourceColumn("elgbl_state_cd_home", "code", 2),
    SourceColumn("elgbl_zip_cd_home", "text", 12),
    SourceColumn("elgbl_cnty_cd_home", "code", 3),
    SourceColumn("elgbl_line_1_adr_mail", "text", 60),
    SourceColumn("elgbl_line_2_adr_mail", "text", 60),
    SourceColumn("elgbl_city_name_mail", "text", 40),
    SourceColumn("elgbl_state_cd_mail", "code", 2),
    SourceColumn("elgbl_zip_cd_mail", "text", 12),
    SourceColumn("elgbl_cnty_cd_mail", "code", 3),
    SourceColumn("elgbl_phne_num_home", "text", 14),
    SourceColumn("elgbl_email_addr", "text", 80),
    SourceColumn("ctznshp_ind", "code", 1),
    SourceColumn("ctznshp_vrfctn_ind", "code", 1),
    SourceColumn("imgrtn_stus_cd", "code", 1),
    SourceColumn("imgrtn_vrfctn_ind", "code", 1),
    SourceColumn("imgrtn_stus_5_yr_bar_end_dt", "date"),
    SourceColumn("rstrctd_bnfts_cd", "code", 1),
    SourceColumn("elgblty_grp_cd", "code", 2),
    SourceColumn("dual_elgbl_cd", "code", 2),
    SourceColumn("chip_cd", "code", 1),
    SourceColumn("mdcd_enrlmt_eff_dt", "date"),
    SourceColumn("mdcd_enrlmt_end_dt", "date"),
    SourceColumn("submtg_state_cd", "code", 2),
    SourceColumn("prgncy_flag", "code", 1),
    SourceColumn("dsblty_flag", "code", 1),
    SourceColumn("chrnc_cond_flag", "code", 1),
    SourceColumn("hcbs_flag", "code", 1),
    SourceColumn("updated_at", "timestamp"),
)

COLUMN_BY_NAME: dict[str, SourceColumn] = {c.name: c for c in ENROLLEE_COLUMNS}

CLAIM_COLUMNS: tuple[str, ...] = (
    "clm_id",
    "msis_ident_num",
    *(f"dgns_cd_{i}" for i in range(1, 13)),
    *(f"prcdr_cd_{i}" for i in range(1, 7)),
    "ndc_cd",
    "drg_cd",
)

# FIPS state codes (50 states + DC) and USPS abbreviations.
STATES: dict[str, str] = {
    "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT", "10": "DE",
    "11": "DC", "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL", "18": "IN", "19": "IA",
    "20": "KS", "21": "KY", "22": "LA", "23": "ME", "24": "MD", "25": "MA", "26": "MI", "27": "MN",
    "28": "MS", "29": "MO", "30": "MT", "31": "NE", "32": "NV", "33": "NH", "34": "NJ", "35": "NM",
    "36": "NY", "37": "NC", "38": "ND", "39": "OH", "40": "OK", "41": "OR", "42": "PA", "44": "RI",
    "45": "SC", "46": "SD", "47": "TN", "48": "TX", "49": "UT", "50": "VT", "51": "VA", "53": "WA",
    "54": "WV", "55": "WI", "56": "WY",
}  # fmt: skip
FIPS_BY_ABBR: dict[str, str] = {abbr: fips for fips, abbr in STATES.items()}


def _sa_type(col: SourceColumn) -> sa.types.TypeEngine:
    if col.kind == "date":
        return sa.Date()
    if col.kind == "timestamp":
        return sa.DateTime(timezone=False)
    return sa.String(col.length or 255)


def source_metadata() -> sa.MetaData:
    """Table definitions used by ``handoff seed`` to create a synthetic source."""
    md = sa.MetaData()
    sa.Table(
        ENROLLEES_TABLE,
        md,
        *(sa.Column(c.name, _sa_type(c), primary_key=(c.name == "msis_ident_num")) for c in ENROLLEE_COLUMNS),
    )
    sa.Table(
        CLAIMS_TABLE,
        md,
        sa.Column("clm_id", sa.String(20), primary_key=True),
        *(sa.Column(n, sa.String(12)) for n in CLAIM_COLUMNS[1:]),
    )
    return md


def state_fips(value: str) -> str:
    """Accept a FIPS code ("06") or a USPS abbreviation ("CA"); return FIPS."""
    v = value.strip().upper()
    if v in FIPS_BY_ABBR:
        return FIPS_BY_ABBR[v]
    if v.zfill(2) in STATES:
        return v.zfill(2)
    raise ValueError(f"unknown state {value!r}: give a USPS code like CA or a FIPS code like 06")
