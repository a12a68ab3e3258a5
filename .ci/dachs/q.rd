<?xml version="1.0" encoding="utf-8"?>
<!-- A gaia_source-like table for gaiadist's query_cone tests: the M67 cone
  of ../shared/data/m67_gaiadr3.fits.gz, served by TAP as gaiadr3.gaia_source
  with the Gaia archive's column names, types and units. -->
<resource schema="gaiadr3">
  <meta name="title">Gaia DR3 sources around M67 (gaiadist test data)</meta>
  <meta name="description">A 5331-row extract of gaiadr3.gaia_source
    around M67, for testing TAP clients.</meta>
  <meta name="creationDate">2026-11-25T00:00:00</meta>
  <meta name="subject">astrometry</meta>
  <meta name="creator.name">gaiadist developers</meta>

  <table id="gaia_source" onDisk="True" adql="True">
    <meta name="description">Gaia DR3 astrometry and photometry of the M67
      field.</meta>
    <primary>source_id</primary>
    <column name="source_id" type="bigint" ucd="meta.id;meta.main" required="True"
      description="Unique source identifier"/>
    <column name="ra" type="double precision" unit="deg"
      ucd="pos.eq.ra;meta.main" description="Right ascension (ICRS, J2016.0)"/>
    <column name="dec" type="double precision" unit="deg"
      ucd="pos.eq.dec;meta.main" description="Declination (ICRS, J2016.0)"/>
    <column name="parallax" type="double precision" unit="mas"
      ucd="pos.parallax.trig" description="Parallax"/>
    <column name="parallax_error" type="real" unit="mas"
      ucd="stat.error;pos.parallax.trig" description="Standard error of parallax"/>
    <column name="phot_g_mean_mag" type="real" unit="mag"
      ucd="phot.mag;em.opt" description="G-band mean magnitude"/>
    <column name="bp_rp" type="real" unit="mag"
      ucd="phot.color;em.opt.B;em.opt.R" description="BP - RP colour"/>
    <column name="nu_eff_used_in_astrometry" type="real" unit="um**-1"
      ucd="em.wavenumber" description="Effective wavenumber used in the astrometric solution"/>
    <column name="pseudocolour" type="real" unit="um**-1"
      ucd="em.wavenumber" description="Astrometrically estimated pseudocolour"/>
    <column name="ecl_lat" type="double precision" unit="deg"
      ucd="pos.ecliptic.lat" description="Ecliptic latitude"/>
    <column name="astrometric_params_solved" type="smallint" required="True"
      ucd="meta.number" description="Which astrometric parameters were estimated"/>
  </table>

  <data id="import">
    <sources pattern="data/*.fits"/>
    <fitsTableGrammar/>
    <make table="gaia_source">
      <rowmaker idmaps="*"/>
    </make>
  </data>
</resource>
